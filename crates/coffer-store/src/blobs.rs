//! Immutable blobs. A blob is written under `tmp/`, fsynced, renamed into `blobs/<xx>/<id>`
//! and its directory fsynced; only then may a record reference it.
//!
//! A small blob never becomes a file: a writer keeps the first [`INLINE_MAX`] bytes in memory,
//! and only when the data outgrows them does it create the temp file (and write them there).
//! A blob whose data ended within the limit is handed back as an [`InlineBlob`], which the
//! metadata store writes in the same transaction as the record that references it: one fsync
//! for the object, none for a file and its directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Blob files are spread over 256 directories named by the first byte of their id.
const SHARDS: u64 = 256;

/// Blobs of at most this many stored bytes (after SSE-C encryption: ciphertext and tags) are
/// kept in the metadata store instead of a file. Below this size a blob file costs far more
/// than its bytes: two fsyncs (data, directory) and a create, rename and later unlink in the
/// file system's journal, about a millisecond here against ~10 µs to copy 16 KiB. Above it
/// those costs are spread over a longer transfer, while inline bytes would grow the metadata
/// file (redb gives a value larger than a page a leaf of its own, rounded up to a power of
/// two: at most 32 KiB here) and its cache. A writer also holds this much in memory per
/// upload before it knows where the blob goes.
pub const INLINE_MAX: usize = 16 * 1024;

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
    /// Blob files looked at.
    pub scanned: usize,
    /// Blob files removed.
    pub removed: usize,
    /// Inline blobs removed (unreferenced: should never happen).
    pub removed_inline: usize,
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

    /// Starts a new blob that is kept in memory while it fits in [`INLINE_MAX`] bytes and
    /// spills to a temp file as soon as it does not. No I/O until it spills.
    pub fn writer(&self) -> io::Result<BlobWriter> {
        self.writer_with_limit(INLINE_MAX)
    }

    /// Starts a new blob in `tmp/` that is always a file (multipart parts). Synchronous file
    /// I/O: call from a blocking context.
    pub fn create_blocking(&self) -> io::Result<BlobWriter> {
        let mut w = self.writer_with_limit(0)?;
        w.spill()?;
        Ok(w)
    }

    pub(crate) fn writer_with_limit(&self, inline_max: usize) -> io::Result<BlobWriter> {
        let id = BlobId::new_random()?;
        Ok(BlobWriter {
            tmp_path: self.tmp.join(format!("{}.tmp", id.0)),
            final_path: self.path_of(&id),
            id,
            inline_max,
            buffer: Vec::new(),
            file: None,
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

/// Bytes small enough to live in the metadata store, under their blob id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineBlob {
    pub id: BlobId,
    pub bytes: Vec<u8>,
}

/// Where a committed blob's bytes are.
#[derive(Debug)]
pub enum StoredBlob {
    /// A durable file under `blobs/`.
    File(BlobId),
    /// Not on disk yet: the metadata transaction that commits its record writes it.
    Inline(InlineBlob),
}

impl StoredBlob {
    pub fn id(&self) -> &BlobId {
        match self {
            Self::File(id) => id,
            Self::Inline(blob) => &blob.id,
        }
    }

    pub fn is_inline(&self) -> bool {
        matches!(self, Self::Inline(_))
    }

    /// The inline bytes, for the metadata write; `None` for a file.
    pub fn into_inline(self) -> Option<InlineBlob> {
        match self {
            Self::File(_) => None,
            Self::Inline(blob) => Some(blob),
        }
    }
}

/// A blob being written. Dropped without `commit_blocking`, its temp file (if any) is removed.
pub struct BlobWriter {
    id: BlobId,
    inline_max: usize,
    /// The bytes so far, while they fit in `inline_max`.
    buffer: Vec<u8>,
    /// The temp file, once the blob outgrew `inline_max`.
    file: Option<File>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    written: u64,
}

impl BlobWriter {
    pub fn id(&self) -> &BlobId {
        &self.id
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends bytes. Synchronous file I/O once the blob is a file.
    pub fn write_all_blocking(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.buffer.len() + buf.len() > self.inline_max {
            self.spill()?;
        }
        match self.file.as_mut() {
            Some(file) => file.write_all(buf)?,
            None => self.buffer.extend_from_slice(buf),
        }
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Appends bytes only if the blob stays in memory (within the inline limit), so without
    /// any I/O; returns false, having written nothing, if they would make it a file.
    pub fn write_inline(&mut self, buf: &[u8]) -> bool {
        if self.file.is_some() || self.buffer.len() + buf.len() > self.inline_max {
            return false;
        }
        self.buffer.extend_from_slice(buf);
        self.written += buf.len() as u64;
        true
    }

    /// Turns the blob into a temp file holding what was buffered.
    fn spill(&mut self) -> io::Result<()> {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&self.tmp_path)?;
        let buffered = std::mem::take(&mut self.buffer);
        // From here the temp file exists, so `Drop` must remove it even if the write fails.
        self.file = Some(match file.write_all(&buffered) {
            Ok(()) => file,
            Err(e) => {
                let _ = fs::remove_file(&self.tmp_path);
                return Err(e);
            }
        });
        Ok(())
    }

    /// Finishes the blob. A file is made durable under its final name (fsync the data, rename,
    /// fsync the directory); bytes that stayed within the inline limit are handed back, to be
    /// committed with the record that references them.
    pub fn commit_blocking(mut self) -> io::Result<StoredBlob> {
        let Some(file) = self.file.take() else {
            return Ok(StoredBlob::Inline(InlineBlob {
                id: self.id.clone(),
                bytes: std::mem::take(&mut self.buffer),
            }));
        };
        let committed = (|| {
            file.sync_data()?;
            fs::rename(&self.tmp_path, &self.final_path)?;
            if let Some(dir) = self.final_path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(StoredBlob::File(self.id.clone()))
        })();
        if committed.is_err() {
            // Whichever name it has by now, no record will reference it.
            let _ = fs::remove_file(&self.tmp_path);
            let _ = fs::remove_file(&self.final_path);
        }
        committed
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp_path);
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
        let id = w.commit_blocking().unwrap().id().clone();
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
