//! Settings: each one comes from a flag, else a `COFFER_*` environment variable, else the TOML
//! config file, else the embedded default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(
    name = "coffer",
    version,
    about = "Coffer: an S3-compatible object store with SSE-C done right",
    long_about = "Coffer serves the S3 API over HTTPS (and plain HTTP for requests that need no secrecy).\n\
                  Started with no arguments it keeps data in ./coffer-data, listens on https://127.0.0.1:9443 and\n\
                  http://127.0.0.1:9000, generates a local CA + server certificate and root credentials on first\n\
                  start, and prints ready-to-paste aws CLI settings.\n\n\
                  Every option can also be set with its COFFER_* environment variable or in the TOML file given\n\
                  by --config (keys as the long option names with '_' for '-'); flags win over the environment,\n\
                  which wins over the file. Extra users are declared in the file as [[users]] tables with\n\
                  name, access_key and secret_key. Root credentials: COFFER_ROOT_ACCESS_KEY and\n\
                  COFFER_ROOT_SECRET_KEY (or root_access_key / root_secret_key in the file)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the S3 server (the default).
    Server(ServerArgs),
    /// Manage users and access keys of a running server (as its root user, over HTTPS).
    Admin(crate::admin_cli::AdminArgs),
    /// Developer tools (benchmarks): see crates/coffer/src/dev_cli.rs.
    #[command(hide = true)]
    Dev(crate::dev_cli::DevArgs),
}

#[derive(Args, Debug, Default)]
pub struct ServerArgs {
    /// TOML config file.
    #[arg(long, env = "COFFER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (metadata, blobs, TLS material, generated credentials). [default: ./coffer-data]
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTPS listen address, or "off". [default: 127.0.0.1:9443]
    #[arg(long, env = "COFFER_HTTPS_LISTEN", value_name = "ADDR|off")]
    pub https_listen: Option<String>,
    /// Plain HTTP listen address, or "off". SSE-C is refused on it. [default: 127.0.0.1:9000]
    #[arg(long, env = "COFFER_HTTP_LISTEN", value_name = "ADDR|off")]
    pub http_listen: Option<String>,
    /// PEM certificate chain for HTTPS. Without it, a local CA and certificate are generated.
    #[arg(
        long,
        env = "COFFER_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(
        long,
        env = "COFFER_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Region reported to clients. [default: us-east-1]
    #[arg(long, env = "COFFER_REGION")]
    pub region: Option<String>,
    /// Base domain for virtual-hosted-style requests (<bucket>.<domain>); also added to the
    /// generated certificate.
    #[arg(long, env = "COFFER_DOMAIN")]
    pub domain: Option<String>,
    /// HTTP status for a wrong SSE-C key: 403 (as AWS) or 400 (as ceph/s3-tests expect). [default: 403]
    #[arg(long, env = "COFFER_SSEC_WRONG_KEY_STATUS", value_parser = ["403", "400"])]
    pub ssec_wrong_key_status: Option<String>,
    /// FOR TEST SUITES ONLY: accept SSE-C keys over plain HTTP, where anyone on the path can read them.
    #[arg(long, env = "COFFER_SSEC_ALLOW_PLAIN_HTTP")]
    pub ssec_allow_plain_http: bool,
    /// AWS Signature Version 2 (Authorization: AWS ..., AWSAccessKeyId/Signature/Expires URLs,
    /// POST forms with AWSAccessKeyId and signature): "on" accepts it (checked in constant
    /// time), "off" refuses it as AWS does where only SigV4 is supported. [default: on]
    #[arg(long, env = "COFFER_SIGV2", value_parser = ["on", "off"])]
    pub sigv2: Option<String>,
    /// The server's master key for SSE-S3/SSE-KMS objects (32 bytes, generated if missing).
    /// Keep it off the data disk so a stolen data dir does not open those objects.
    /// [default: <data-dir>/master.key]
    #[arg(long, env = "COFFER_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Write the listening endpoints as JSON to this file once ready.
    #[arg(long, env = "COFFER_READY_FILE", value_name = "FILE")]
    pub ready_file: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax, e.g. "info" or "coffer=debug"). [default: info]
    #[arg(long, env = "COFFER_LOG")]
    pub log: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    https_listen: Option<String>,
    http_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    region: Option<String>,
    domain: Option<String>,
    ssec_wrong_key_status: Option<u16>,
    ssec_allow_plain_http: Option<bool>,
    sigv2: Option<String>,
    master_key_file: Option<PathBuf>,
    log: Option<String>,
    root_access_key: Option<String>,
    root_secret_key: Option<String>,
    #[serde(default)]
    users: Vec<UserConfig>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The resolved settings the server runs with.
#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub https_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    pub region: String,
    pub domain: Option<String>,
    pub ssec_wrong_key_status: u16,
    pub ssec_allow_plain_http: bool,
    /// Accept AWS Signature Version 2.
    pub sigv2: bool,
    pub ready_file: Option<PathBuf>,
    pub master_key_file: Option<PathBuf>,
    pub log: String,
    /// Root credentials given by the environment or the file (else generated).
    pub root_credentials: Option<(String, String)>,
    pub users: Vec<UserConfig>,
}

fn parse_listen(what: &str, value: &str) -> Result<Option<SocketAddr>, String> {
    if value.eq_ignore_ascii_case("off") || value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|e| {
        format!("{what}: {value:?} is not an address like 127.0.0.1:9443 or \"off\" ({e})")
    })
}

fn read_file_config(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
}

impl Settings {
    pub fn resolve(args: ServerArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let https = args
            .https_listen
            .or(file.https_listen)
            .unwrap_or_else(|| "127.0.0.1:9443".into());
        let http = args
            .http_listen
            .or(file.http_listen)
            .unwrap_or_else(|| "127.0.0.1:9000".into());
        let tls_cert = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key must be given together".into()),
        };
        let ssec_wrong_key_status = match args.ssec_wrong_key_status.as_deref() {
            Some(s) => s.parse().map_err(|_| "bad --ssec-wrong-key-status")?,
            None => file.ssec_wrong_key_status.unwrap_or(403),
        };
        if ![400, 403].contains(&ssec_wrong_key_status) {
            return Err("ssec_wrong_key_status must be 403 or 400".into());
        }
        let sigv2 = match args.sigv2.or(file.sigv2).as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(format!("sigv2 must be \"on\" or \"off\", not {other:?}")),
        };
        let root_credentials = match (
            std::env::var("COFFER_ROOT_ACCESS_KEY")
                .ok()
                .or(file.root_access_key),
            std::env::var("COFFER_ROOT_SECRET_KEY")
                .ok()
                .or(file.root_secret_key),
        ) {
            (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Some((a, s)),
            (None, None) => None,
            _ => {
                return Err(
                    "COFFER_ROOT_ACCESS_KEY and COFFER_ROOT_SECRET_KEY must be set together".into(),
                );
            }
        };
        let settings = Self {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("coffer-data")),
            https_listen: parse_listen("--https-listen", &https)?,
            http_listen: parse_listen("--http-listen", &http)?,
            tls_cert,
            region: args
                .region
                .or(file.region)
                .unwrap_or_else(|| "us-east-1".into()),
            domain: args.domain.or(file.domain).filter(|d| !d.is_empty()),
            ssec_wrong_key_status,
            ssec_allow_plain_http: args.ssec_allow_plain_http
                || file.ssec_allow_plain_http.unwrap_or(false),
            sigv2,
            ready_file: args.ready_file,
            master_key_file: args.master_key_file.or(file.master_key_file),
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
            root_credentials,
            users: file.users,
        };
        if settings.https_listen.is_none() && settings.http_listen.is_none() {
            return Err("both listeners are off; nothing to serve".into());
        }
        Ok(settings)
    }
}
