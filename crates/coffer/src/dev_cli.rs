//! `coffer dev`: developer tools, hidden from `--help`. Today one: `populate`, which fills a
//! bucket with many zero-byte objects straight in the metadata store, for benchmarks that need
//! a bucket of a million objects (through the S3 API, where every PUT is fsynced, that takes
//! about half an hour on the bench machine; this takes seconds).
//!
//! The records are the ones a zero-byte PUT writes (same fields and sizes, same encoding, same
//! versioning rules, through `MetaStore::put_objects`), with one difference: the blob id their
//! one segment names is a fresh random id whose file is never created. A zero-byte segment is
//! never read, and a missing blob is not an error when the object is later overwritten or
//! deleted; the records keep the size of real ones, and the server's garbage collector sees as
//! many references as it would for real objects. The store is opened as the server opens it,
//! and redb's file lock refuses a data dir a running server holds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use coffer_store::{BucketRecord, ObjectRecord, Segment, Store};

/// The MD5 of no bytes: the ETag of every zero-byte object.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
/// Largest object key S3 accepts, in bytes.
const MAX_KEY_LEN: usize = 1024;

#[derive(Args, Debug)]
pub struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
}

#[derive(Subcommand, Debug)]
enum DevCommand {
    /// Write N zero-byte objects PREFIX<index> straight into the metadata store of a data dir no
    /// server is running on (for scale benchmarks: bench/run.sh --scale).
    Populate(PopulateArgs),
}

#[derive(Args, Debug)]
struct PopulateArgs {
    /// The data dir (created if missing). Refused while a server holds it.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The bucket; created (owned by --owner) when missing.
    #[arg(long)]
    bucket: String,
    /// How many objects to write.
    #[arg(long)]
    count: u64,
    /// Key prefix; keys are PREFIX followed by the index, zero-padded to --width digits.
    #[arg(long, default_value = "populate/")]
    prefix: String,
    /// First index.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Digits of the index in the key (more when the last index needs them).
    #[arg(long, default_value_t = 8)]
    width: usize,
    /// Put the objects in "folders" of this many: keys PREFIX<index / N>/<index>, both zero-padded
    /// (0: no folders).
    #[arg(long, default_value_t = 0)]
    per_folder: u64,
    /// Objects per transaction (one fsync each).
    #[arg(long, default_value_t = 50_000)]
    batch: usize,
    /// The owner of a bucket created here.
    #[arg(long, default_value = "root")]
    owner: String,
    /// The region of a bucket created here.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Content-Type of the objects.
    #[arg(long, default_value = "application/octet-stream")]
    content_type: String,
}

pub fn run(args: DevArgs) -> ExitCode {
    let result = match args.command {
        DevCommand::Populate(a) => populate(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coffer dev: {e}");
            ExitCode::FAILURE
        }
    }
}

fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A version id as the server makes them: 48 bits of milliseconds, then 80 random bits.
fn version_id(ms: i64) -> Result<String, String> {
    let mut random = [0u8; 10];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| "the system random generator failed")?;
    let ms = u64::try_from(ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    Ok(format!("{ms:012x}{}", hex::encode(random)))
}

/// The record a zero-byte PUT with this Content-Type writes; its blob file is never created.
fn empty_object(content_type: &str, ms: i64) -> Result<ObjectRecord, String> {
    let blob = coffer_store::BlobId::new_random().map_err(|e| e.to_string())?;
    Ok(ObjectRecord {
        version_id: version_id(ms)?,
        size: 0,
        etag: EMPTY_MD5.to_owned(),
        last_modified_ms: ms,
        content_type: Some(content_type.to_owned()),
        content_encoding: None,
        content_disposition: None,
        content_language: None,
        cache_control: None,
        expires: None,
        user_metadata: Vec::new(),
        checksum: None,
        segments: vec![Segment {
            blob: blob.as_str().to_owned(),
            part_number: 1,
            size: 0,
            stream_salt: None,
            etag: EMPTY_MD5.to_owned(),
            checksum: None,
            inline: false,
        }],
        encryption: None,
        delete_marker: false,
        null_version: false,
        upload_id: None,
        acl: None,
        tags: Vec::new(),
    })
}

fn populate(a: &PopulateArgs) -> Result<(), String> {
    if !valid_bucket_name(&a.bucket) {
        return Err(format!("{:?} is not a valid bucket name", a.bucket));
    }
    if a.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let last = a
        .start
        .checked_add(a.count.saturating_sub(1))
        .ok_or("--start + --count is too large")?;
    let width = a.width.max(last.to_string().len());
    let key = |i: u64| match a.per_folder {
        0 => format!("{}{i:0width$}", a.prefix),
        n => format!("{}{:0width$}/{i:0width$}", a.prefix, i / n),
    };
    if key(last).len() > MAX_KEY_LEN {
        return Err(format!("keys would be longer than {MAX_KEY_LEN} bytes"));
    }
    let started = Instant::now();
    let store = Store::open(&a.data_dir).map_err(|e| {
        let hint = if e.to_string().to_lowercase().contains("already open") {
            " (is a server running on it? stop it first)"
        } else {
            ""
        };
        format!(
            "cannot open the store in {}: {e}{hint}",
            a.data_dir.display()
        )
    })?;
    let meta = store.meta();
    let created = meta
        .create_bucket(
            &a.bucket,
            &BucketRecord {
                owner: a.owner.clone(),
                created_ms: now_ms(),
                region: a.region.clone(),
                versioning: None,
                policy: None,
                acl: None,
                cors: None,
            },
        )
        .map_err(|e| e.to_string())?
        .is_none();

    let mut written = 0u64;
    let mut replaced = Vec::new();
    let mut next = a.start;
    while written < a.count {
        let n = (a.count - written).min(a.batch as u64);
        let ms = now_ms();
        let batch = (next..next + n)
            .map(|i| Ok((key(i), empty_object(&a.content_type, ms)?)))
            .collect::<Result<Vec<_>, String>>()?;
        replaced.extend(
            meta.put_objects(&a.bucket, batch)
                .map_err(|e| format!("after {written} objects: {e}"))?,
        );
        written += n;
        next += n;
    }
    // Records this run replaced may have had data: remove their blobs, as a PUT would.
    for old in &replaced {
        // (Inline bytes went with the transaction that replaced the record.)
        for seg in old.segments.iter().filter(|s| !s.inline) {
            if let Some(id) = coffer_store::BlobId::parse(&seg.blob)
                && let Err(e) = store.blobs().remove_blocking(&id)
            {
                eprintln!(
                    "coffer dev: could not remove replaced blob {}: {e}",
                    seg.blob
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "populated {written} zero-byte objects {}..{} in bucket {}{} ({} replaced) in {secs:.1} s",
        key(a.start),
        key(last),
        a.bucket,
        if created { " (created)" } else { "" },
        replaced.len(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(valid_bucket_name("bench-1"));
        assert!(!valid_bucket_name("Bench"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("-ab"));
    }

    #[test]
    fn populates_a_bucket_and_refuses_a_held_store() {
        let dir = tempfile::tempdir().unwrap();
        let args = |count, start| PopulateArgs {
            data_dir: dir.path().to_path_buf(),
            bucket: "pop".into(),
            count,
            prefix: "p/".into(),
            start,
            width: 3,
            per_folder: 0,
            batch: 7,
            owner: "root".into(),
            region: "us-east-1".into(),
            content_type: "application/octet-stream".into(),
        };
        populate(&args(20, 0)).unwrap();
        populate(&args(5, 1000)).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys: Vec<String> = store
            .meta()
            .scan_objects("pop", "", b"", true, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys.len(), 25);
        assert_eq!(keys[0], "p/000");
        assert_eq!(keys[19], "p/019");
        // The index is widened when it needs more digits.
        assert_eq!(keys[20], "p/1000");
        let rec = store.meta().object("pop", "p/007").unwrap().unwrap();
        assert_eq!((rec.size, rec.etag.as_str()), (0, EMPTY_MD5));
        assert_eq!(store.meta().bucket("pop").unwrap().unwrap().owner, "root");
        // The store is held (as by a running server): populate must refuse it.
        let err = populate(&args(1, 0)).unwrap_err();
        assert!(err.contains("cannot open the store"), "{err}");
        drop(store);
        populate(&PopulateArgs {
            prefix: "f/".into(),
            per_folder: 4,
            ..args(10, 0)
        })
        .unwrap();
        let store = Store::open(dir.path()).unwrap();
        let keys: Vec<String> = store
            .meta()
            .scan_objects("pop", "f/", b"", true, 100)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(keys.len(), 10);
        assert_eq!(
            (keys[0].as_str(), keys[4].as_str()),
            ("f/000/000", "f/001/004")
        );
        assert_eq!(keys[9], "f/002/009");
    }
}
