//! `coffer admin`: users and access keys of a running server, through its admin API.
//!
//! Credentials are root's, taken from the flags, else `COFFER_ROOT_ACCESS_KEY`/`..._SECRET_KEY`,
//! else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the aws CLI's credentials file (the
//! profile `AWS_PROFILE` or "default": where the lines Coffer prints on first start put them).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use coffer_client::admin::{AdminTarget, call};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The server's HTTPS endpoint. [default: https://localhost:9443]
    #[arg(long, env = "COFFER_ENDPOINT_URL", value_name = "URL", global = true)]
    endpoint_url: Option<String>,
    /// CA bundle that verifies the server. [default: <data-dir>/tls/ca.pem, else AWS_CA_BUNDLE]
    #[arg(long, value_name = "FILE", global = true)]
    ca_bundle: Option<PathBuf>,
    /// The server's data dir, to find its generated CA. [default: ./coffer-data]
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Root's access key id.
    #[arg(long, value_name = "ID", global = true)]
    access_key: Option<String>,
    /// Root's secret access key (prefer the environment: arguments show up in `ps`).
    #[arg(long, value_name = "SECRET", global = true)]
    secret_key: Option<String>,
    /// Region for the signature. [default: us-east-1]
    #[arg(long, env = "COFFER_REGION", global = true)]
    region: Option<String>,
    /// Print the server's JSON answer as it is.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Users: create, list, delete.
    #[command(subcommand)]
    User(UserCommand),
    /// Access keys: create (the secret is shown once), list, revoke.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user (1-64 of letters, digits and +=,.@_-). It owns the buckets it creates.
    Create { name: String },
    /// List every user with its access key ids.
    List,
    /// Delete a user and revoke its keys (refused while it owns buckets).
    Delete { name: String },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Create an access key for a user (at most 2 per user); prints the secret once.
    Create { user: String },
    /// List access key ids (never secrets).
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an access key: requests signed with it fail from now on.
    Revoke { access_key: String },
}

/// `[profile]` entries of an aws CLI credentials file.
fn profile_credentials(text: &str, profile: &str) -> Option<(String, String)> {
    let mut in_profile = false;
    let (mut ak, mut sk) = (None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
        } else if in_profile && let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => ak = Some(v.trim().to_owned()),
                "aws_secret_access_key" => sk = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    Some((ak?, sk?))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn credentials(args: &AdminArgs) -> Result<(String, String), String> {
    if let (Some(ak), Some(sk)) = (&args.access_key, &args.secret_key) {
        return Ok((ak.clone(), sk.clone()));
    }
    for (a, s) in [
        ("COFFER_ROOT_ACCESS_KEY", "COFFER_ROOT_SECRET_KEY"),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ] {
        if let (Some(ak), Some(sk)) = (env(a), env(s)) {
            return Ok((ak, sk));
        }
    }
    let file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    file.and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| profile_credentials(&text, &profile))
        .ok_or_else(|| {
            "no root credentials: give --access-key and --secret-key, or set COFFER_ROOT_ACCESS_KEY and \
             COFFER_ROOT_SECRET_KEY (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an aws CLI profile)"
                .to_string()
        })
}

fn ca_bundle(args: &AdminArgs) -> Result<PathBuf, String> {
    if let Some(p) = &args.ca_bundle {
        return Ok(p.clone());
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("coffer-data"));
    let generated = data_dir.join("tls").join("ca.pem");
    if generated.is_file() {
        return Ok(generated);
    }
    coffer_client::tls::default_ca_bundle().ok_or_else(|| {
        format!(
            "no CA bundle: {} does not exist; give --ca-bundle (or --data-dir)",
            generated.display()
        )
    })
}

/// The action name and JSON body of a command.
fn request_of(command: &AdminCommand) -> (&'static str, Value) {
    match command {
        AdminCommand::User(UserCommand::Create { name }) => ("CreateUser", json!({ "user": name })),
        AdminCommand::User(UserCommand::List) => ("ListUsers", json!({})),
        AdminCommand::User(UserCommand::Delete { name }) => ("DeleteUser", json!({ "user": name })),
        AdminCommand::Key(KeyCommand::Create { user }) => {
            ("CreateAccessKey", json!({ "user": user }))
        }
        AdminCommand::Key(KeyCommand::List { user }) => match user {
            Some(u) => ("ListAccessKeys", json!({ "user": u })),
            None => ("ListAccessKeys", json!({})),
        },
        AdminCommand::Key(KeyCommand::Revoke { access_key }) => {
            ("RevokeAccessKey", json!({ "access_key": access_key }))
        }
    }
}

fn text(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_owned()
}

/// A person's reading of a successful answer.
fn render(command: &AdminCommand, v: &Value, endpoint: &str, ca: &Path) -> String {
    match command {
        AdminCommand::User(UserCommand::Create { .. }) => {
            format!(
                "created user {}\nnext: coffer admin key create {}\n",
                text(v, "user"),
                text(v, "user")
            )
        }
        AdminCommand::User(UserCommand::Delete { .. }) => {
            let revoked = v
                .get("revoked_access_keys")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!(
                "deleted user {} and revoked {revoked} access key(s)\n",
                text(v, "user")
            )
        }
        AdminCommand::User(UserCommand::List) => {
            let mut out = format!(
                "{:<32} {:<7} {:<21} ACCESS KEYS\n",
                "USER", "SOURCE", "CREATED"
            );
            for u in v
                .get("users")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let keys: Vec<&str> = u
                    .get("access_keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                out.push_str(&format!(
                    "{:<32} {:<7} {:<21} {}\n",
                    text(u, "user"),
                    text(u, "source"),
                    text(u, "created"),
                    keys.join(" ")
                ));
            }
            out
        }
        AdminCommand::Key(KeyCommand::Create { .. }) => {
            let (user, ak, sk) = (
                text(v, "user"),
                text(v, "access_key"),
                text(v, "secret_key"),
            );
            format!(
                "access key for user {user} (the secret key is shown now and never again):\n  \
                 access key : {ak}\n  secret key : {sk}\n\n\
                 For the aws CLI:\n  \
                 aws configure set aws_access_key_id {ak} --profile {user}\n  \
                 aws configure set aws_secret_access_key {sk} --profile {user}\n  \
                 aws --profile {user} --endpoint-url {endpoint} --ca-bundle {ca} s3 ls\n",
                ca = ca.display()
            )
        }
        AdminCommand::Key(KeyCommand::List { .. }) => {
            let mut out = format!(
                "{:<24} {:<32} {:<7} CREATED\n",
                "ACCESS KEY", "USER", "SOURCE"
            );
            for k in v
                .get("access_keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push_str(&format!(
                    "{:<24} {:<32} {:<7} {}\n",
                    text(k, "access_key"),
                    text(k, "user"),
                    text(k, "source"),
                    text(k, "created")
                ));
            }
            out
        }
        AdminCommand::Key(KeyCommand::Revoke { .. }) => format!(
            "revoked access key {} of user {}\n",
            text(v, "access_key"),
            text(v, "user")
        ),
    }
}

/// The five predefined XML entities, which is all an S3 error message holds.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `Code: Message` of an S3 error document.
fn error_summary(body: &str) -> String {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        body.split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&close))
            .map(|(inner, _)| unescape(inner))
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => body.trim().to_owned(),
    }
}

pub fn run(args: AdminArgs) -> ExitCode {
    match run_inner(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("coffer admin: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &AdminArgs) -> Result<String, String> {
    let (access_key, secret_key) = credentials(args)?;
    let ca = ca_bundle(args)?;
    let endpoint = args
        .endpoint_url
        .clone()
        .unwrap_or_else(|| "https://localhost:9443".into());
    let region = args.region.clone().unwrap_or_else(|| "us-east-1".into());
    let (action, body) = request_of(&args.command);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let target = AdminTarget {
        endpoint: &endpoint,
        ca_bundle: &ca,
        access_key: &access_key,
        secret_key: &secret_key,
        region: &region,
    };
    let response = runtime.block_on(call(&target, action, &body.to_string()))?;
    if !(200..300).contains(&response.status) {
        return Err(format!(
            "{} (HTTP {})",
            error_summary(&response.body),
            response.status
        ));
    }
    let value: Value = serde_json::from_str(&response.body)
        .map_err(|e| format!("unexpected answer from the server: {e}"))?;
    if args.json {
        Ok(format!("{value:#}\n"))
    } else {
        Ok(render(&args.command, &value, &endpoint, &ca))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_profile_from_an_aws_credentials_file() {
        let text = "[other]\naws_access_key_id = A1\naws_secret_access_key = S1\n\n\
                    [default]\naws_access_key_id=A2\naws_secret_access_key = S2\nregion = x\n";
        assert_eq!(
            profile_credentials(text, "default"),
            Some(("A2".into(), "S2".into()))
        );
        assert_eq!(
            profile_credentials(text, "other"),
            Some(("A1".into(), "S1".into()))
        );
        assert_eq!(profile_credentials(text, "missing"), None);
    }

    #[test]
    fn summarizes_s3_error_documents() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchEntity</Code><Message>The user &quot;x&quot; cannot be found.</Message></Error>";
        assert_eq!(
            error_summary(body),
            "NoSuchEntity: The user \"x\" cannot be found."
        );
        assert_eq!(error_summary("plain"), "plain");
    }
}
