//! Command-line flags, and the validated run configuration built from them.
//!
//! Everything a user typed is checked here once (sizes, the op mix, the endpoint, the SSE-C key), so the
//! load loop never has to handle a malformed input.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::{Parser, ValueEnum};

/// The S3 operations the generator can issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    Put,
    Get,
    RangeGet,
    Head,
    List,
    Delete,
    MultipartPut,
}

impl OpKind {
    pub const ALL: [OpKind; 7] = [
        OpKind::Put,
        OpKind::Get,
        OpKind::RangeGet,
        OpKind::Head,
        OpKind::List,
        OpKind::Delete,
        OpKind::MultipartPut,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Put => "put",
            OpKind::Get => "get",
            OpKind::RangeGet => "range-get",
            OpKind::Head => "head",
            OpKind::List => "list",
            OpKind::Delete => "delete",
            OpKind::MultipartPut => "multipart-put",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(s: &str) -> Result<OpKind, String> {
        OpKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = OpKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown op {s:?} (one of {})", names.join(", "))
            })
    }

    /// Ops that need the objects to exist before the timed run starts.
    pub fn reads_existing(self) -> bool {
        matches!(
            self,
            OpKind::Get | OpKind::RangeGet | OpKind::Head | OpKind::List | OpKind::Delete
        )
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A weighted op mix such as `put=1,get=3` (a bare `get` is `get=1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    entries: Vec<(OpKind, u32)>,
    total: u64,
}

impl Mix {
    pub fn parse(s: &str) -> Result<Mix, String> {
        let mut entries: Vec<(OpKind, u32)> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, weight) = match item.split_once('=') {
                Some((n, w)) => {
                    let w: u32 = w
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad weight in {item:?} (want op=N)"))?;
                    (n.trim(), w)
                }
                None => (item, 1),
            };
            let kind = OpKind::parse(name)?;
            if entries.iter().any(|(k, _)| *k == kind) {
                return Err(format!("op {name} given twice"));
            }
            if weight > 0 {
                entries.push((kind, weight));
            }
        }
        let total = entries.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err("the op mix is empty".into());
        }
        Ok(Mix { entries, total })
    }

    /// Pick an op for a uniform random number.
    pub fn pick(&self, random: u64) -> OpKind {
        let mut r = random % self.total;
        for (kind, w) in &self.entries {
            let w = u64::from(*w);
            if r < w {
                return *kind;
            }
            r -= w;
        }
        // Unreachable while total is the sum of the weights; the first op is a harmless answer.
        self.entries[0].0
    }

    pub fn kinds(&self) -> impl Iterator<Item = OpKind> + '_ {
        self.entries.iter().map(|(k, _)| *k)
    }

    pub fn entries(&self) -> &[(OpKind, u32)] {
        &self.entries
    }

    pub fn contains(&self, kind: OpKind) -> bool {
        self.entries.iter().any(|(k, _)| *k == kind)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|(k, w)| format!("{k}={w}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A byte count: `4096`, `4KiB`, `1MiB`, `64MiB`, `1GiB` (binary), `4KB`/`1MB` (decimal), `4k`/`1m`/`1g` (binary).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "bad size unit in {s:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?} (e.g. 4096, 4KiB, 1MiB, 64MiB)"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || !(0.0..=1e15).contains(&bytes) {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Human form of a byte count, binary units (`64 MiB`, `4 KiB`, `1536 B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, unit) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    for (name, unit) in UNITS {
        if bytes >= unit {
            return format!("{:.1} {name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} B")
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    Mix::parse(s)
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('s');
    let v: f64 = t
        .parse()
        .map_err(|_| format!("bad number of seconds {s:?}"))?;
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(format!("seconds {s:?} out of range (0..86400)"));
    }
    Ok(v)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PayloadMode {
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`: the client hashes nothing.
    Unsigned,
    /// The SHA-256 of every request body is computed and signed (costs client CPU).
    Signed,
}

#[derive(Parser, Debug)]
#[command(
    name = "coffer-bench",
    version,
    about = "An S3 load generator: PUT, GET, ranged GET, HEAD, LIST, DELETE and multipart PUT against any \
             S3 endpoint, with or without SSE-C.",
    long_about = "An S3 load generator: PUT, GET, ranged GET, HEAD, LIST, DELETE and multipart PUT against any \
                  S3 endpoint (path-style addressing), with or without SSE-C.\n\n\
                  Bodies are generated once in memory and sent without copies; by default each 256 KiB of \
                  every PUT body starts with a unique 16-byte tag so that deduplicating servers store real data. \
                  GET bodies are counted and discarded. Ops that read (get, range-get, head, list, delete) \
                  first upload --objects objects (the prepare phase, not timed).\n\n\
                  Exit status: 0 when every op succeeded, 1 when some op failed (the report is still printed), \
                  2 when the run could not start (bad flags, bucket or prepare failure)."
)]
pub struct Args {
    /// S3 endpoint, e.g. https://127.0.0.1:9443 or http://127.0.0.1:3900.
    #[arg(long, env = "COFFER_BENCH_ENDPOINT")]
    pub endpoint: String,

    /// Access key id.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    pub access_key: String,

    /// Secret access key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_key: String,

    /// Region used in the SigV4 scope.
    #[arg(long, default_value = "us-east-1")]
    pub region: String,

    /// PEM file of CA certificates to trust for HTTPS (default: $AWS_CA_BUNDLE, $SSL_CERT_FILE, then the system
    /// bundle).
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,

    /// Do not verify the server certificate.
    #[arg(long)]
    pub insecure: bool,

    /// Bucket to use; created when missing.
    #[arg(long, default_value = "coffer-bench")]
    pub bucket: String,

    /// Key prefix of the objects (keys are PREFIX00000000, PREFIX00000001, ...).
    #[arg(long, default_value = "coffer-bench/")]
    pub prefix: String,

    /// Object size: 4096, 4KiB, 1MiB, 64MiB, 1GiB (binary) or 4KB, 1MB (decimal).
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    pub size: u64,

    /// Number of distinct object keys: PUTs cycle over them, reads pick them in turn.
    #[arg(long, default_value_t = 100)]
    pub objects: u64,

    /// Concurrent requests (one connection each).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,

    /// Length of the measured run in seconds (default 10 unless --ops is given).
    #[arg(long, value_parser = parse_secs, conflicts_with = "ops")]
    pub duration: Option<f64>,

    /// Run exactly this many measured ops instead of a fixed duration.
    #[arg(long)]
    pub ops: Option<u64>,

    /// Op or weighted mix: put, get, range-get, head, list, delete, multipart-put, or e.g. put=1,get=3.
    #[arg(long = "op", default_value = "put", value_parser = parse_mix)]
    pub mix: Mix,

    /// SSE-C: send the three customer-key headers on PUT, GET, HEAD and multipart requests.
    #[arg(long)]
    pub ssec: bool,

    /// SSE-C key as base64 of 32 bytes (default: random per run). Lets separate runs read each other's objects.
    #[arg(long, requires = "ssec")]
    pub ssec_key: Option<String>,

    /// Seconds of load before measuring starts (ops during it are not counted, their errors are).
    #[arg(long, default_value = "0", value_parser = parse_secs)]
    pub warmup: f64,

    /// Part size for multipart-put (the last part may be smaller).
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub part_size: u64,

    /// Length of each range-get (default: half the object, at most 1 MiB), at a random offset.
    #[arg(long, value_parser = parse_size)]
    pub range_size: Option<u64>,

    /// max-keys of each list (ListObjectsV2 over the prefix).
    #[arg(long, default_value_t = 1000)]
    pub list_max_keys: u32,

    /// Prefix of each list (default: --prefix; "" lists the whole bucket).
    #[arg(long)]
    pub list_prefix: Option<String>,

    /// start-after of each list: the page begins after this key (e.g. in the middle of a big bucket).
    #[arg(long)]
    pub list_start_after: Option<String>,

    /// delimiter of each list: keys roll up into common prefixes ("folders").
    #[arg(long)]
    pub list_delimiter: Option<String>,

    /// A list page with fewer entries (KeyCount: keys and common prefixes) than this counts as a failed op
    /// (bad-response): proves each page was full.
    #[arg(long, default_value_t = 0)]
    pub list_min_keys: u32,

    /// How request bodies are signed.
    #[arg(long, value_enum, default_value = "unsigned")]
    pub payload: PayloadMode,

    /// Skip the prepare phase (the objects already exist, e.g. from an earlier run with the same --ssec-key).
    #[arg(long)]
    pub no_prepare: bool,

    /// Send identical PUT bodies (no per-request tags).
    #[arg(long)]
    pub no_tag: bool,

    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// Tokio worker threads (default: number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,

    /// Also report the CPU time this process (e.g. the server) used during the measured window (Linux /proc).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Free-form label copied into the JSON report.
    #[arg(long)]
    pub label: Option<String>,
}

/// Where to stop the measured run.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    After(Duration),
    Ops(u64),
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub ca_bundle: Option<PathBuf>,
    pub insecure: bool,
    pub bucket: String,
    pub prefix: String,
    pub size: u64,
    pub objects: u64,
    pub concurrency: usize,
    pub stop: Stop,
    pub mix: Mix,
    pub ssec_key: Option<[u8; 32]>,
    pub warmup: Duration,
    pub part_size: u64,
    pub range_size: u64,
    pub list_max_keys: u32,
    pub list_prefix: String,
    pub list_start_after: Option<String>,
    pub list_delimiter: Option<String>,
    pub list_min_keys: u32,
    pub payload: PayloadMode,
    pub prepare: bool,
    pub tag_bodies: bool,
    pub json: bool,
    pub quiet: bool,
    pub threads: Option<usize>,
    pub server_pid: Option<u32>,
    pub label: Option<String>,
}

const MIN_PART: u64 = 5 << 20;
const MAX_PARTS: u64 = 10_000;
/// Bodies live in memory: refuse sizes that would not.
const MAX_SIZE: u64 = 8 << 30;

impl Config {
    pub fn from_args(a: Args) -> Result<Config, String> {
        if a.concurrency == 0 || a.concurrency > 4096 {
            return Err("--concurrency must be 1..4096".into());
        }
        if a.objects == 0 {
            return Err("--objects must be at least 1".into());
        }
        if a.size > MAX_SIZE {
            return Err(format!(
                "--size is at most {} (bodies are kept in memory)",
                human_size(MAX_SIZE)
            ));
        }
        if a.size == 0 && (a.mix.contains(OpKind::RangeGet) || a.mix.contains(OpKind::MultipartPut))
        {
            return Err("range-get and multipart-put need --size > 0".into());
        }
        if a.mix.contains(OpKind::MultipartPut) {
            let parts = a.size.div_ceil(a.part_size.max(1));
            if a.part_size < MIN_PART && parts > 1 {
                return Err(
                    "--part-size must be at least 5MiB when an object has more than one part"
                        .into(),
                );
            }
            if parts > MAX_PARTS {
                return Err("--size / --part-size gives more than 10000 parts".into());
            }
        }
        if a.bucket.len() < 3
            || a.bucket.len() > 63
            || !a
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(format!(
                "--bucket {:?} is not a valid bucket name",
                a.bucket
            ));
        }
        if a.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        let ssec_key = match (a.ssec, a.ssec_key) {
            (false, _) => None,
            (true, None) => {
                let mut key = [0u8; 32];
                aws_lc_rs::rand::fill(&mut key).map_err(|_| "cannot draw a random SSE-C key")?;
                Some(key)
            }
            (true, Some(b64)) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| "--ssec-key is not valid base64")?;
                let key: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| "--ssec-key must be base64 of exactly 32 bytes")?;
                Some(key)
            }
        };
        let stop = match (a.ops, a.duration) {
            (Some(0), _) => return Err("--ops must be at least 1".into()),
            (Some(n), _) => Stop::Ops(n),
            (None, d) => {
                let secs = d.unwrap_or(10.0);
                if secs <= 0.0 {
                    return Err("--duration must be positive".into());
                }
                Stop::After(Duration::from_secs_f64(secs))
            }
        };
        let range_size = a
            .range_size
            .unwrap_or_else(|| (a.size / 2).min(1 << 20))
            .clamp(1, a.size.max(1));
        let list_max_keys = a.list_max_keys.clamp(1, 1000);
        let list_default_prefix = a.prefix.clone();
        if a.list_min_keys > list_max_keys {
            return Err("--list-min-keys is more than --list-max-keys".into());
        }
        let prepare = !a.no_prepare && a.mix.kinds().any(OpKind::reads_existing);
        Ok(Config {
            endpoint: a.endpoint,
            access_key: a.access_key,
            secret_key: a.secret_key,
            region: a.region,
            ca_bundle: a.ca_bundle,
            insecure: a.insecure,
            bucket: a.bucket,
            prefix: a.prefix,
            size: a.size,
            objects: a.objects,
            concurrency: a.concurrency,
            stop,
            mix: a.mix,
            ssec_key,
            warmup: Duration::from_secs_f64(a.warmup),
            part_size: a.part_size.max(1),
            range_size,
            list_max_keys,
            list_prefix: a.list_prefix.unwrap_or(list_default_prefix),
            list_start_after: a.list_start_after.filter(|k| !k.is_empty()),
            list_delimiter: a.list_delimiter.filter(|d| !d.is_empty()),
            list_min_keys: a.list_min_keys,
            payload: a.payload,
            prepare,
            tag_bodies: !a.no_tag,
            json: a.json,
            quiet: a.quiet,
            threads: a.threads,
            server_pid: a.server_pid,
            label: a.label,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4KB"), Ok(4000));
        assert_eq!(parse_size("1 MB"), Ok(1_000_000));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(1500), "1.5 KiB");
        assert_eq!(human_size(10), "10 B");
    }

    #[test]
    fn mixes() {
        let m = Mix::parse("put=1,get=3").unwrap();
        assert_eq!(m.entries(), &[(OpKind::Put, 1), (OpKind::Get, 3)]);
        let picks: Vec<OpKind> = (0..4).map(|r| m.pick(r)).collect();
        assert_eq!(picks, [OpKind::Put, OpKind::Get, OpKind::Get, OpKind::Get]);
        assert_eq!(
            Mix::parse("range-get").unwrap().entries(),
            &[(OpKind::RangeGet, 1)]
        );
        assert_eq!(m.to_string(), "put=1,get=3");
        assert!(Mix::parse("put=x").is_err());
        assert!(Mix::parse("copy").is_err());
        assert!(Mix::parse("put=0").is_err());
        assert!(Mix::parse("put,put").is_err());
        assert!(Mix::parse("").is_err());
    }

    #[test]
    fn config_checks() {
        let base = [
            "coffer-bench",
            "--endpoint",
            "https://127.0.0.1:1",
            "--access-key",
            "a",
            "--secret-key",
            "b",
        ];
        let parse = |extra: &[&str]| {
            let argv: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
            Config::from_args(Args::try_parse_from(argv).map_err(|e| e.to_string())?)
        };
        let c = parse(&["--op", "get", "--size", "4KiB"]).unwrap();
        assert!(c.prepare);
        assert_eq!(c.range_size, 2048);
        assert!(matches!(c.stop, Stop::After(d) if d == Duration::from_secs(10)));
        assert!(!parse(&["--op", "put"]).unwrap().prepare);
        assert!(
            parse(&[
                "--op",
                "multipart-put",
                "--size",
                "64MiB",
                "--part-size",
                "1MiB"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "--op",
                "multipart-put",
                "--size",
                "4MiB",
                "--part-size",
                "1MiB"
            ])
            .is_err()
        );
        assert!(
            parse(&[
                "--op",
                "multipart-put",
                "--size",
                "1MiB",
                "--part-size",
                "1MiB"
            ])
            .is_ok()
        );
        assert!(parse(&["--bucket", "Bad_Name"]).is_err());
        assert!(parse(&["--ssec-key", "AAAA"]).is_err());
        assert!(parse(&["--ssec", "--ssec-key", "AAAA"]).is_err());
        let k = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(
            parse(&["--ssec", "--ssec-key", &k]).unwrap().ssec_key,
            Some([7u8; 32])
        );
        assert!(parse(&["--ops", "5", "--duration", "3"]).is_err());
        let c = parse(&["--prefix", "p/", "--op", "list"]).unwrap();
        assert_eq!((c.list_prefix.as_str(), c.list_start_after), ("p/", None));
        let c = parse(&[
            "--op",
            "list",
            "--list-prefix",
            "",
            "--list-start-after",
            "k/5",
            "--list-min-keys",
            "1000",
        ])
        .unwrap();
        assert_eq!(c.list_prefix, "");
        assert_eq!(c.list_start_after.as_deref(), Some("k/5"));
        assert!(parse(&["--list-max-keys", "10", "--list-min-keys", "11"]).is_err());
        assert!(matches!(parse(&["--ops", "5"]).unwrap().stop, Stop::Ops(5)));
    }
}
