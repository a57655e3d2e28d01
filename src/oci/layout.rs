//! The OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/…`). Blobs are
//! written first under temporary names and renamed; `index.json` is replaced last, so an
//! interrupted write never leaves an index pointing at missing blobs. Writing into an
//! existing layout adds to it: blobs already there are reused, other tags are kept and the
//! same tag is replaced.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::BuiltIndex;
use super::compress::{BlobSink, BlobWriter};
use super::json::to_canonical_vec;
use super::referrers::{Referrer, is_artifact_descriptor};
use crate::fsutil::{TEMP_PREFIX, WriteOptions, write_temp_in};

pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Is `tag` a valid `org.opencontainers.image.ref.name` (alphanumerics joined by `-._:@/+`)?
pub fn valid_ref_name(tag: &str) -> bool {
    let starts_and_ends = tag.starts_with(|c: char| c.is_ascii_alphanumeric())
        && tag.ends_with(|c: char| c.is_ascii_alphanumeric());
    // Runs of separators between alphanumerics: one of `-._:@/+`, or `--`.
    let runs_ok = tag
        .split(|c: char| c.is_ascii_alphanumeric())
        .all(|run| run.is_empty() || run == "--" || (run.len() == 1 && "-._:@/+".contains(run)));
    starts_and_ends && runs_ok
}

/// Remove kiln's leftover temporary files (regular files only) directly in `dir`.
fn remove_stale_temps(dir: &Path) -> anyhow::Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let stale = e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && e.file_type().is_ok_and(|t| t.is_file());
        if stale {
            fs_err::remove_file(e.path()).context("removing a stale temporary file")?;
        }
    }
    Ok(())
}

/// Does `path` hold exactly the blob `digest` of `len` bytes? (Read and hashed in chunks.)
fn blob_is_intact(path: &Path, digest: &str, len: u64) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() != len {
        return false;
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut h = crate::digest::Hasher::new();
    std::io::copy(&mut f, &mut h).is_ok() && h.finish_digest() == digest
}

/// Path of a blob inside a layout.
pub fn blob_path(dir: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("`{digest}` is not a sha256 digest"))?;
    Ok(dir.join("blobs").join("sha256").join(hex))
}

/// The `index.json` descriptor for a built index.
pub fn index_descriptor(index: &BuiltIndex, tag: Option<&str>) -> Value {
    let mut d = json!({
        "mediaType": MEDIA_INDEX,
        "digest": index.digest,
        "size": index.index_json.len(),
    });
    if let Some(t) = tag {
        d["annotations"] = json!({ REF_NAME: t });
    }
    d
}

/// `index.json` after adding `new` to `existing` (None: a new layout). A tagged entry
/// replaces the entry with the same tag; an untagged one replaces the untagged entries
/// (they could not be told apart by a reader anyway).
pub fn merge_index_json(existing: Option<&[u8]>, new: Value) -> anyhow::Result<Vec<u8>> {
    let mut doc: Value = match existing {
        Some(b) => serde_json::from_slice(b).context("index.json is not valid JSON")?,
        None => json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [] }),
    };
    let tag_of = |d: &Value| d["annotations"][REF_NAME].as_str().map(str::to_string);
    let new_tag = tag_of(&new);
    let Some(manifests) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        bail!("index.json has no `manifests` array: is this an OCI image layout?");
    };
    // Attached artifacts (OCI 1.1 referrers) are not images: a new image keeps them.
    manifests.retain(|d| is_artifact_descriptor(d) || tag_of(d) != new_tag);
    manifests.push(new);
    if doc.get("mediaType").is_none() {
        doc["mediaType"] = json!(MEDIA_INDEX);
    }
    to_canonical_vec(&doc)
}

/// `index.json` with `referrers` listed (each digest once): an OCI 1.1 artifact in a
/// layout is found from `index.json`, its manifest naming its `subject`.
pub fn with_referrers(index_json: &[u8], referrers: &[Referrer]) -> anyhow::Result<Vec<u8>> {
    if referrers.is_empty() {
        return Ok(index_json.to_vec());
    }
    let mut doc: Value =
        serde_json::from_slice(index_json).context("index.json is not valid JSON")?;
    let Some(manifests) = doc.get_mut("manifests").and_then(Value::as_array_mut) else {
        bail!("index.json has no `manifests` array: is this an OCI image layout?");
    };
    manifests.retain(|d| !referrers.iter().any(|r| d["digest"] == r.digest.as_str()));
    manifests.extend(referrers.iter().map(Referrer::descriptor));
    to_canonical_vec(&doc)
}

/// Every blob of `index` and of `referrers`, with the index and artifact manifests.
pub(crate) fn all_blobs<'a>(
    index: &'a BuiltIndex,
    referrers: &'a [Referrer],
) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    index
        .blobs
        .iter()
        .map(|(d, b)| (d.as_str(), b.as_slice()))
        .chain(std::iter::once((
            index.digest.as_str(),
            index.index_json.as_slice(),
        )))
        .chain(referrers.iter().flat_map(|r| {
            r.blobs
                .iter()
                .map(|(d, b)| (d.as_str(), b.as_slice()))
                .chain(std::iter::once((r.digest.as_str(), r.manifest.as_slice())))
        }))
}

/// Write `index` into the layout at `dir`, tagged `tag`.
pub fn write_oci_dir(dir: &Path, index: &BuiltIndex, tag: Option<&str>) -> anyhow::Result<()> {
    write_oci_dir_with(dir, index, tag, &[])
}

/// Write `index` into the layout at `dir`, tagged `tag`, with `referrers` attached.
pub fn write_oci_dir_with(
    dir: &Path,
    index: &BuiltIndex,
    tag: Option<&str>,
    referrers: &[Referrer],
) -> anyhow::Result<()> {
    check_tag(tag)?;
    LayoutWriter::open(dir)?.finish(index, tag, referrers)
}

fn check_tag(tag: Option<&str>) -> anyhow::Result<()> {
    if let Some(t) = tag
        && !valid_ref_name(t)
    {
        bail!("`{t}` is not a valid tag: use letters, digits and -._:@/+ (e.g. `1.0` or `latest`)");
    }
    Ok(())
}

/// Does `dir` hold anything besides kiln's temporary files?
fn holds_anything(dir: &Path) -> anyhow::Result<bool> {
    Ok(fs_err::read_dir(dir)?
        .flatten()
        .any(|e| !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)))
}

/// A blob written ahead: its temporary file, being synced (`None`: the layout already
/// held it intact).
type Staged = std::thread::JoinHandle<anyhow::Result<Option<tempfile::TempPath>>>;

/// An OCI layout open for writing. Writers of the same layout (parallel CI jobs, two kiln
/// runs) take turns, from [`LayoutWriter::open`] to the end of [`LayoutWriter::finish`], so
/// that neither loses the other's tag when index.json is read, merged and replaced; the lock
/// is on the directory itself (no extra file in the layout). Meanwhile the writer is a
/// [`BlobSink`]: a layer blob is written while it is compressed, into a temporary file in
/// the layout's root (never in blobs/sha256, where readers such as umoci gc and skopeo
/// expect only digests), and synced on a thread of its own as soon as it is whole; `finish`
/// renames it to its digest, writes the other blobs and replaces `index.json` last, so an
/// interrupted write never leaves an index pointing at missing blobs. Dropped without
/// `finish` (a failed build), it removes what it wrote, and the directory if it made it.
pub struct LayoutWriter {
    dir: PathBuf,
    /// The lock, held until the writer is dropped.
    _lock: std::fs::File,
    /// The directory did not exist before.
    created: bool,
    /// Blobs written ahead, by digest.
    staged: Mutex<Vec<(String, Staged)>>,
    finished: bool,
}

impl LayoutWriter {
    /// Open (or create) the layout at `dir` and take its lock. A directory that is not a
    /// layout is refused unless it is empty.
    pub fn open(dir: &Path) -> anyhow::Result<LayoutWriter> {
        let created = std::fs::symlink_metadata(dir).is_err();
        fs_err::create_dir_all(dir).context("creating the OCI layout")?;
        let lock = loop {
            let lock =
                std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
            lock.lock()
                .with_context(|| format!("locking {} for writing", dir.display()))?;
            // A writer that held the lock before may have removed the directory it made
            // (its build failed): lock the one that is there now.
            let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| {
                use std::os::unix::fs::MetadataExt;
                a.dev() == b.dev() && a.ino() == b.ino()
            };
            match (std::fs::metadata(dir), lock.metadata()) {
                (Ok(now), Ok(held)) if same(&now, &held) => break lock,
                _ => fs_err::create_dir_all(dir).context("creating the OCI layout")?,
            }
        };
        let writer = LayoutWriter {
            dir: dir.to_path_buf(),
            _lock: lock,
            created,
            staged: Mutex::new(Vec::new()),
            finished: false,
        };
        let layout_file = dir.join("oci-layout");
        match fs_err::read(&layout_file) {
            Ok(b) => {
                let v: Value = serde_json::from_slice(&b)
                    .with_context(|| format!("{} is not valid JSON", layout_file.display()))?;
                if v["imageLayoutVersion"] != "1.0.0" {
                    bail!(
                        "{} has imageLayoutVersion {}: kiln writes only 1.0.0 layouts; choose another directory",
                        layout_file.display(),
                        v["imageLayoutVersion"]
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Never spread blobs over a directory that holds something else (kiln's
                // own temporary files are leftovers of a run that was killed).
                if holds_anything(dir)? {
                    bail!(
                        "{} is not empty and is not an OCI image layout: write to a new or empty directory",
                        dir.display()
                    );
                }
            }
            Err(e) => return Err(e).context("reading the OCI layout"),
        }
        // Temporary files of runs that were killed (SIGKILL, power loss): under the lock no
        // other writer is busy, so every one is stale. Older kilns left them in blobs/sha256.
        remove_stale_temps(dir)?;
        remove_stale_temps(&dir.join("blobs").join("sha256"))?;
        Ok(writer)
    }

    /// Write `index` into the layout, tagged `tag`, with `referrers` attached: the blobs
    /// written ahead renamed to their digests, the others written, `index.json` last. The
    /// syncs run side by side (the disk, not the CPU, is the limit): the blobs written
    /// ahead (each started when it was whole), the other blobs, `oci-layout` for a new
    /// layout and the new `index.json`, which is renamed into place once the blobs'
    /// directory entries are on disk.
    pub fn finish(
        mut self,
        index: &BuiltIndex,
        tag: Option<&str>,
        referrers: &[Referrer],
    ) -> anyhow::Result<()> {
        check_tag(tag)?;
        let dir = self.dir.clone();
        let sha_dir = dir.join("blobs").join("sha256");
        fs_err::create_dir_all(&sha_dir).context("creating the OCI layout")?;
        let ahead = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        // What may need writing: (destination, digest to check it against, bytes). A blob
        // under its digest is reused only if it really has that digest: a damaged or
        // planted file of the right size is rewritten, not pointed at by the new tag.
        let mut todo: Vec<(PathBuf, Option<&str>, &[u8])> = Vec::new();
        let layout_file = dir.join("oci-layout");
        let new_layout = std::fs::symlink_metadata(&layout_file).is_err();
        if new_layout {
            todo.push((layout_file, None, OCI_LAYOUT));
        }
        let mut seen = BTreeSet::new();
        // Layers that went only to the outputs' writers (not in memory): this writer has
        // them, or a writer of the same directory put them there before.
        for (digest, &size) in &index.ahead {
            seen.insert(digest.as_str());
            if !ahead.iter().any(|(d, _)| d == digest)
                && !blob_is_intact(&blob_path(&dir, digest)?, digest, size)
            {
                bail!(
                    "internal error: layer {digest} was not written into {}",
                    dir.display()
                );
            }
        }
        for (digest, bytes) in all_blobs(index, referrers) {
            if seen.insert(digest) && !ahead.iter().any(|(d, _)| d == digest) {
                todo.push((blob_path(&dir, digest)?, Some(digest), bytes));
            }
        }
        let index_file = dir.join("index.json");
        let existing = match fs_err::read(&index_file) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).context("reading the OCI layout's index"),
        };
        let merged = merge_index_json(existing.as_deref(), index_descriptor(index, tag))
            .and_then(|m| with_referrers(&m, referrers))
            .with_context(|| format!("updating {}", index_file.display()))?;
        // A rebuild that changed nothing finds index.json as it would write it: left alone
        // (its bytes and every blob it names are already there). Else the new one is
        // written and synced with the blobs, and renamed into place after them.
        let changed = existing.as_deref() != Some(merged.as_slice());
        if changed {
            todo.push((index_file.clone(), None, &merged));
        }
        let (written, renamed) = std::thread::scope(|s| {
            // Temporary files live in the layout's root, never in blobs/sha256.
            let written = s.spawn(|| write_durably(&dir, &todo));
            let renamed = ahead.into_iter().try_fold(false, |any, (digest, sync)| {
                let synced = sync
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                // `None`: the layout held it intact already.
                let Some(tmp) = synced.filter(|_| seen.contains(digest.as_str())) else {
                    return Ok(any);
                };
                let path = blob_path(&dir, &digest)?;
                tmp.persist(&path)
                    .map_err(|e| e.error)
                    .with_context(|| format!("renaming into {}", path.display()))?;
                Ok::<_, anyhow::Error>(true)
            });
            (join(written), renamed)
        });
        let mut written = written?;
        let renamed = renamed?;
        let new_index = if changed {
            written.pop().flatten()
        } else {
            None
        };
        let mut any = renamed;
        for ((path, _, _), tmp) in todo.iter().zip(written) {
            if let Some(tmp) = tmp {
                tmp.persist(path)
                    .map_err(|e| e.error)
                    .with_context(|| format!("renaming into {}", path.display()))?;
                any = true;
            }
        }
        // The blobs' directory entries reach the disk before index.json names them (when
        // this run put any there).
        if any {
            sync_dir(&sha_dir)?;
        }
        if let Some(tmp) = new_index {
            tmp.persist(&index_file)
                .map_err(|e| e.error)
                .with_context(|| format!("renaming into {}", index_file.display()))?;
        }
        if changed || new_layout {
            sync_dir(&dir)?;
        }
        self.finished = true;
        Ok(())
    }
}

/// Write each of `files` (destination, the digest it must have, bytes) durably through a
/// temporary file in `dir`, unless its destination already holds the blob intact (a
/// check reads and hashes). One thread per file: they wait on the disk, not the CPU, and
/// the syncs of one wave share the file system's journal commits and the disk's cache
/// flushes (synced one after the other, 11 small files took ~3 ms each; a second wave
/// of threads, ~10 ms more). Returns each file's synced temporary file, in order, for
/// the caller to rename into place (`None`: left alone).
fn write_durably(
    dir: &Path,
    files: &[(PathBuf, Option<&str>, &[u8])],
) -> anyhow::Result<Vec<Option<tempfile::TempPath>>> {
    let made = crate::par::par_map(files, files.len().min(64), |(path, digest, bytes)| {
        if digest.is_some_and(|d| blob_is_intact(path, d, bytes.len() as u64)) {
            return Ok(None);
        }
        write_temp_in(dir, bytes, WriteOptions::DURABLE).map(Some)
    });
    made.into_iter().collect()
}

impl BlobSink for LayoutWriter {
    fn start(&self) -> anyhow::Result<Box<dyn BlobWriter + '_>> {
        let file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)
            .with_context(|| format!("creating a temporary file in {}", self.dir.display()))?;
        Ok(Box::new(AheadBlob {
            layout: self,
            file,
            len: 0,
            flushed: 0,
        }))
    }
}

/// A blob being written ahead into a layout.
struct AheadBlob<'a> {
    layout: &'a LayoutWriter,
    file: tempfile::NamedTempFile,
    len: u64,
    /// Bytes before this are on their way to the disk.
    flushed: u64,
}

/// Start the disk writing a blob's bytes once this many more are written, so that the sync
/// at its end has little left to wait for.
const WRITE_BEHIND: u64 = 1 << 20;

impl BlobWriter for AheadBlob<'_> {
    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.file
            .write_all(bytes)
            .with_context(|| format!("writing {}", self.file.path().display()))?;
        self.len += bytes.len() as u64;
        if self.len - self.flushed >= WRITE_BEHIND {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain system call on a file descriptor this writer owns. It only
            // starts the write-out (the sync at the end makes the blob durable), so a
            // failure here is left for that sync to report.
            unsafe {
                libc::sync_file_range(
                    self.file.as_file().as_raw_fd(),
                    self.flushed as i64,
                    (self.len - self.flushed) as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.flushed = self.len;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, digest: &str) -> anyhow::Result<()> {
        let AheadBlob {
            layout, file, len, ..
        } = *self;
        let path = blob_path(&layout.dir, digest)?;
        let owned = digest.to_string();
        // Synced on a thread of its own: the compressing workers go on meanwhile.
        let sync = std::thread::spawn(move || {
            if blob_is_intact(&path, &owned, len) {
                return Ok(None);
            }
            use std::os::unix::fs::PermissionsExt;
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(WriteOptions::DURABLE.mode))
                .and_then(|_| file.as_file().sync_all())
                .with_context(|| format!("writing {}", file.path().display()))?;
            Ok(Some(file.into_temp_path()))
        });
        layout
            .staged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((digest.to_string(), sync));
        Ok(())
    }
}

impl Drop for LayoutWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The blobs written ahead go (their temporary files are removed when dropped),
        // and so does a directory this writer made, leaving nothing behind.
        let handles = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, h) in handles {
            drop(h.join());
        }
        if self.created {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// A scoped thread's result; its panic goes on on this thread.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// fsync a directory, so renames in it are durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ref_names() {
        for ok in ["latest", "1.0", "v1.2.3-rc.1", "a--b", "reg/x:1", "x@y+z"] {
            assert!(valid_ref_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a b", "a/", ".a", "a:"] {
            assert!(!valid_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn merging_keeps_other_tags_and_replaces_the_same() {
        let d = |digest: &str, tag: Option<&str>| {
            let mut v = json!({"mediaType": MEDIA_INDEX, "digest": digest, "size": 1});
            if let Some(t) = tag {
                v["annotations"] = json!({ REF_NAME: t });
            }
            v
        };
        let a = merge_index_json(None, d("sha256:a", Some("one"))).unwrap();
        let b = merge_index_json(Some(&a), d("sha256:b", Some("two"))).unwrap();
        let c = merge_index_json(Some(&b), d("sha256:c", Some("one"))).unwrap();
        let u = merge_index_json(Some(&c), d("sha256:u", None)).unwrap();
        let u2 = merge_index_json(Some(&u), d("sha256:v", None)).unwrap();
        let v: Value = serde_json::from_slice(&u2).unwrap();
        let got: Vec<(&str, Option<&str>)> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["digest"].as_str().unwrap(),
                    m["annotations"][REF_NAME].as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("sha256:b", Some("two")),
                ("sha256:c", Some("one")),
                ("sha256:v", None)
            ]
        );
        assert_eq!(v["schemaVersion"], 2);
        assert!(merge_index_json(Some(b"{}"), d("sha256:x", None)).is_err());
    }

    use crate::oci::layer::{Compressed, TarStream, compress_all};
    use crate::oci::{BuildOptions, Compression, LayerEntry, PlatformImage, build_index};

    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        crate::fsutil::tree_bytes(dir).unwrap()
    }

    /// Two platforms' images of several gzip members each (bytes that compress like code).
    fn images(dir: &Path) -> Vec<PlatformImage> {
        ["linux/amd64", "linux/arm64"]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut x = 0x9e37_79b9u32 + i as u32;
                let bin: Vec<u8> = (0..3 * crate::oci::layer::GZIP_MEMBER + 777)
                    .map(|n| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        if n % 5 == 0 { x as u8 } else { (n % 47) as u8 }
                    })
                    .collect();
                let path = dir.join(format!("app-{i}"));
                std::fs::write(&path, bin).unwrap();
                PlatformImage {
                    platform: p.parse().unwrap(),
                    entries: vec![LayerEntry::file("/usr/local/bin/app", path, 0o755)],
                    layers: Vec::new(),
                    spec: Default::default(),
                }
            })
            .collect()
    }

    #[test]
    fn blobs_written_while_compressing_make_the_same_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let images = images(tmp.path());
        let opts = BuildOptions::default();
        let built = build_index(&images, &opts).unwrap();
        let after = tmp.path().join("after");
        write_oci_dir(&after, &built, Some("t")).unwrap();

        let ahead = tmp.path().join("ahead");
        let w = LayoutWriter::open(&ahead).unwrap();
        let again = crate::oci::index::build_index_to(&images, &opts, &[&w]).unwrap();
        assert_eq!(again.digest, built.digest);
        // The layer blobs are in the layout already, as temporary files in its root.
        let early = files(&ahead);
        assert_eq!(early.len(), 2, "{:?}", early.keys());
        assert!(
            early
                .keys()
                .all(|k| k.to_string_lossy().starts_with(TEMP_PREFIX))
        );
        w.finish(&again, Some("t"), &[]).unwrap();
        assert_eq!(files(&ahead), files(&after));

        // Layers not kept in memory (the layout the only output): the same layout, and a
        // second writing of the index into it finds them there.
        let only = tmp.path().join("only");
        let w = LayoutWriter::open(&only).unwrap();
        let lean = crate::oci::index::build_index_only_to(&images, &opts, &[&w]).unwrap();
        assert_eq!(lean.digest, built.digest);
        assert_eq!(lean.total_size(), built.total_size());
        assert_eq!(lean.ahead.len(), 2, "{:?}", lean.ahead);
        assert!(lean.ahead.keys().all(|d| !lean.blobs.contains_key(d)));
        w.finish(&lean, Some("t"), &[]).unwrap();
        assert_eq!(files(&only), files(&after));
        write_oci_dir(&only, &lean, Some("t")).unwrap();
        assert_eq!(files(&only), files(&after));
        // Anywhere else those layers are missing: an error, never a layout without them.
        let elsewhere = tmp.path().join("elsewhere");
        let err = write_oci_dir(&elsewhere, &lean, Some("t")).unwrap_err();
        assert!(format!("{err:#}").contains("was not written"), "{err:#}");
    }

    #[test]
    fn writing_the_same_index_again_leaves_the_layout_alone_and_repairs_it() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let images = images(tmp.path());
        let built = build_index(&images, &BuildOptions::default()).unwrap();
        let dir = tmp.path().join("layout");
        write_oci_dir(&dir, &built, Some("t")).unwrap();
        let index_file = dir.join("index.json");
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let before = inode(&index_file);
        let written = files(&dir);
        write_oci_dir(&dir, &built, Some("t")).unwrap();
        assert_eq!(inode(&index_file), before, "index.json was not replaced");
        assert_eq!(files(&dir), written);
        // A damaged blob is still found and rewritten (index.json unchanged).
        let layer = blob_path(&dir, &built.images[0].layers[0].digest).unwrap();
        let mut bytes = std::fs::read(&layer).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&layer, bytes).unwrap();
        write_oci_dir(&dir, &built, Some("t")).unwrap();
        assert_eq!(files(&dir), written);
        // Another tag changes index.json.
        write_oci_dir(&dir, &built, Some("u")).unwrap();
        assert_ne!(inode(&index_file), before);
    }

    /// A sink that fails on its `n`th write, after passing the bytes to the layout.
    struct FailingAt<'a> {
        layout: &'a LayoutWriter,
        n: usize,
        writes: Mutex<usize>,
    }

    struct Failing<'a> {
        inner: Box<dyn BlobWriter + 'a>,
        sink: &'a FailingAt<'a>,
    }

    impl BlobSink for FailingAt<'_> {
        fn start(&self) -> anyhow::Result<Box<dyn BlobWriter + '_>> {
            Ok(Box::new(Failing {
                inner: self.layout.start()?,
                sink: self,
            }))
        }
    }

    impl BlobWriter for Failing<'_> {
        fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
            self.inner.write(bytes)?;
            let mut w = self.sink.writes.lock().unwrap();
            *w += 1;
            if *w == self.sink.n {
                bail!("disk full (on purpose)");
            }
            Ok(())
        }

        fn finish(self: Box<Self>, digest: &str) -> anyhow::Result<()> {
            self.inner.finish(digest)
        }
    }

    #[test]
    fn a_layer_that_fails_while_written_leaves_nothing_that_looks_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let images = images(tmp.path());
        let tars: Vec<TarStream> = images
            .iter()
            .map(|i| TarStream::build(&i.entries, 0).unwrap())
            .collect();
        let tars: Vec<&TarStream> = tars.iter().collect();
        let members = tars[0].len().div_ceil(crate::oci::layer::GZIP_MEMBER);
        // A layout that already holds an image: it stays exactly as it was.
        let existing = tmp.path().join("existing");
        let before = build_index(&images[..1], &BuildOptions::default()).unwrap();
        write_oci_dir(&existing, &before, Some("old")).unwrap();
        let was = files(&existing);
        let fresh = tmp.path().join("fresh");
        for dir in [&existing, &fresh] {
            // The first layer is whole (and syncing) before the second one fails.
            for n in [2, members + 2] {
                let w = LayoutWriter::open(dir).unwrap();
                let sink = FailingAt {
                    layout: &w,
                    n,
                    writes: Mutex::new(0),
                };
                let err = compress_all(&tars, Compression::Gzip, &[&sink], true)
                    .err()
                    .expect("the sink fails");
                assert!(format!("{err:#}").contains("on purpose"), "{err:#}");
                drop(w);
                if dir == &fresh {
                    assert!(!fresh.exists(), "{:?}", files(&fresh).keys());
                } else {
                    assert_eq!(files(&existing), was);
                }
            }
        }
        // And without a failure the same sinks get every blob, whole.
        let w = LayoutWriter::open(&fresh).unwrap();
        let done: Vec<Compressed> = compress_all(&tars, Compression::Gzip, &[&w], true).unwrap();
        let staged: Vec<Vec<u8>> = files(&fresh).into_values().collect();
        assert_eq!(staged.len(), 2);
        for c in &done {
            assert!(staged.contains(&c.blob));
        }
    }
}
