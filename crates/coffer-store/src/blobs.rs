//! Immutable blob files. A blob is written under `tmp/`, fsynced, renamed into
//! `blobs/<xx>/<id>` and its directory fsynced; only then may a record reference it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Blob files are spread over 256 directories named by the first byte of their id.
const SHARDS: u64 = 256;

fn is_blob_name(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A blob id as a number (the GC keeps 16 bytes per reference instead of a string).
pub(crate) fn id_number(s: &str) -> Option<u128> {
    if is_blob_name(s) {
        u128::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// The shard (directory) of a blob id.
pub(crate) fn shard_of(id: u128) -> u64 {
    // The top byte: the id's first two hex digits, the directory's name.
    u64::try_from(id >> 120).unwrap_or(0)
}

/// Pass `pass` of `passes` covers these shards (together they cover all 256 once).
pub(crate) fn shard_range(pass: u64, passes: u64) -> Range<u64> {
    let passes = passes.clamp(1, SHARDS);
    (pass * SHARDS / passes)..((pass + 1) * SHARDS / passes)
}

/// A blob's name: 128 random bits in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobId(String);

impl BlobId {
    pub fn new_random() -> io::Result<Self> {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| io::Error::other("CSPRNG failure"))?;
        Ok(Self(hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts only names this module could have produced, so a record can never point
    /// a path outside the blob directory.
    pub fn parse(s: &str) -> Option<Self> {
        is_blob_name(s).then(|| Self(s.to_owned()))
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct GcReport {
    pub scanned: usize,
    pub removed: usize,
}

pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub fn open(root: &Path) -> io::Result<Self> {
        let blobs = root.join("blobs");
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp)?;
        for i in 0..=255u8 {
            fs::create_dir_all(blobs.join(format!("{i:02x}")))?;
        }
        Ok(Self { blobs, tmp })
    }

    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        self.blobs.join(&id.0[..2]).join(&id.0)
    }

    /// Starts a new blob in `tmp/`. Synchronous file I/O: call from a blocking context.
    pub fn create_blocking(&self) -> io::Result<BlobWriter> {
        let id = BlobId::new_random()?;
        let tmp_path = self.tmp.join(format!("{}.tmp", id.0));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        Ok(BlobWriter {
            file,
            tmp_path: Some(tmp_path),
            final_path: self.path_of(&id),
            id,
            written: 0,
        })
    }

    /// Removes a blob; a missing file is not an error (GC may have raced us).
    pub fn remove_blocking(&self, id: &BlobId) -> io::Result<()> {
        match fs::remove_file(self.path_of(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Deletes everything in `tmp/`. Only safe when no write is in flight (start-up).
    pub fn clear_tmp(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes the files of the given shards that `referenced` does not claim and that were
    /// last modified before `cutoff`.
    pub fn remove_unreferenced(
        &self,
        shards: Range<u64>,
        referenced: &dyn Fn(&str) -> bool,
        cutoff: SystemTime,
    ) -> io::Result<GcReport> {
        let mut report = GcReport::default();
        for shard in shards {
            let entries = match fs::read_dir(self.blobs.join(format!("{shard:02x}"))) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                report.scanned += 1;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if referenced(name) {
                    continue;
                }
                // A file removed meanwhile (an overwrite unlinking its old blob) is no error.
                let modified = match entry.metadata() {
                    Ok(m) => m.modified().ok(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if modified.is_some_and(|m| m < cutoff) {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => report.removed += 1,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(report)
    }
}

/// A blob being written. Dropped without `commit_blocking`, its temp file is removed.
pub struct BlobWriter {
    file: File,
    tmp_path: Option<PathBuf>,
    final_path: PathBuf,
    id: BlobId,
    written: u64,
}

impl BlobWriter {
    pub fn id(&self) -> &BlobId {
        &self.id
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn write_all_blocking(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Makes the blob durable under its final name: fsync the data, rename, fsync the directory.
    pub fn commit_blocking(mut self) -> io::Result<BlobId> {
        self.file.sync_data()?;
        if let Some(tmp) = self.tmp_path.take() {
            fs::rename(&tmp, &self.final_path)?;
        }
        if let Some(dir) = self.final_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.id.clone())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp_path.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn write_commit_and_collect() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.create_blocking().unwrap();
        w.write_all_blocking(b"hello").unwrap();
        let id = w.commit_blocking().unwrap();
        assert_eq!(fs::read(store.path_of(&id)).unwrap(), b"hello");

        let abandoned = store.create_blocking().unwrap();
        drop(abandoned);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        let none = |_: &str| false;
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let report = store
            .remove_unreferenced(0..SHARDS, &none, an_hour_ago)
            .unwrap();
        assert_eq!(report.removed, 0, "young blobs survive a grace period");
        let later = SystemTime::now() + Duration::from_secs(1);
        let it = |name: &str| name == id.as_str();
        assert_eq!(
            store
                .remove_unreferenced(0..SHARDS, &it, later)
                .unwrap()
                .removed,
            0
        );
        // Shards other than the blob's are not looked at.
        let shard = shard_of(id_number(id.as_str()).unwrap());
        let others = store.remove_unreferenced(0..shard, &none, later).unwrap();
        assert_eq!((others.scanned, others.removed), (0, 0));
        assert_eq!(
            store
                .remove_unreferenced(shard..shard + 1, &none, later)
                .unwrap()
                .removed,
            1
        );
    }

    #[test]
    fn shard_ranges_cover_every_shard_once() {
        for passes in [1, 2, 3, 7, 256] {
            let mut covered = Vec::new();
            for pass in 0..passes {
                covered.extend(shard_range(pass, passes));
            }
            assert_eq!(covered, (0..SHARDS).collect::<Vec<_>>(), "{passes} passes");
        }
        let id = BlobId::new_random().unwrap();
        let n = id_number(id.as_str()).unwrap();
        assert_eq!(format!("{:02x}", shard_of(n)), id.as_str()[..2]);
        assert_eq!(id_number("ABCDEF0123456789abcdef0123456789"), None);
        assert_eq!(id_number("+bcdef0123456789abcdef0123456789"), None);
    }

    #[test]
    fn blob_ids_are_validated() {
        assert!(BlobId::parse("../../etc/passwd").is_none());
        assert!(BlobId::parse(BlobId::new_random().unwrap().as_str()).is_some());
    }
}
