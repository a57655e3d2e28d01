//! Compressed layers kept between builds. A rebuild that changed nothing makes the same
//! tars, and compressing them again was most of its packing time. A blob is found by its
//! tar's sha256 (the diff_id), the compression and the compressor (the caller's salt: kiln's
//! own executable, as other code may compress differently), and used only while its bytes
//! still have the digest recorded when they were made: a reused layer is byte for byte
//! what compressing the tar again gives.

use std::path::{Path, PathBuf};

use super::Compression;
use super::compress::Compressed;
use crate::digest::{Hasher, sha256_digest};
use crate::fsutil::{WriteOptions, write_atomic};

/// How many blobs a store keeps (the least recently used go first): a few builds' worth of
/// platforms.
pub const KEEP: usize = 48;

/// How many bytes of blobs a store keeps at most (the least recently used go first). A build
/// whose layers are larger than this compresses the ones that did not fit again next time.
pub const KEEP_BYTES: u64 = 512 << 20;

/// The length of the line a kept blob starts with: its `sha256:` digest and a newline.
const HEADER: usize = "sha256:".len() + 64 + 1;

/// A directory of compressed layer blobs by tar digest, compression and compressor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStore {
    dir: PathBuf,
    salt: String,
    keep: usize,
    keep_bytes: u64,
}

impl LayerStore {
    /// Blobs under `dir`, valid for the compressor `salt` names (e.g. a fingerprint of the
    /// running executable).
    pub fn new(dir: &Path, salt: &str) -> LayerStore {
        LayerStore {
            dir: dir.to_path_buf(),
            salt: salt.to_string(),
            keep: KEEP,
            keep_bytes: KEEP_BYTES,
        }
    }

    /// Keep at most `blobs` blobs and `bytes` bytes (for tests).
    #[cfg(test)]
    fn with_limits(self, blobs: usize, bytes: u64) -> LayerStore {
        LayerStore {
            keep: blobs,
            keep_bytes: bytes,
            ..self
        }
    }

    fn path(&self, diff_id: &str, c: Compression) -> PathBuf {
        let mut h = Hasher::new();
        for part in [self.salt.as_str(), &format!("{c:?}"), diff_id] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        self.dir.join(h.finish_hex())
    }

    /// The blob kept for the tar `diff_id` compressed with `c`, if there is one whose bytes
    /// still match the digest recorded with them. Never for `Compression::None` (that blob
    /// is the tar itself).
    pub fn get(&self, diff_id: &str, c: Compression) -> Option<Compressed> {
        use std::io::Read;
        if c == Compression::None {
            return None;
        }
        let mut file = std::fs::File::open(self.path(diff_id, c)).ok()?;
        let len = file.metadata().ok()?.len();
        let mut header = [0u8; HEADER];
        file.read_exact(&mut header).ok()?;
        let digest = std::str::from_utf8(&header[..HEADER - 1]).ok()?.to_string();
        let mut blob = Vec::with_capacity((len as usize).saturating_sub(HEADER));
        file.read_to_end(&mut blob).ok()?;
        if header[HEADER - 1] != b'\n' || sha256_digest(&blob) != digest {
            return None;
        }
        // Used now: the trim keeps what builds use (best effort: at worst it goes sooner).
        let _ = file.set_modified(std::time::SystemTime::now());
        Some(Compressed {
            size: blob.len() as u64,
            blob,
            digest,
            diff_id: diff_id.to_string(),
        })
    }

    /// Keep `layer` (compressed with `c`). Best effort: a store that cannot be written
    /// only means compressing again next time.
    pub fn put(&self, layer: &Compressed, c: Compression) {
        if c == Compression::None
            || layer.digest.len() != HEADER - 1
            || std::fs::create_dir_all(&self.dir).is_err()
        {
            return;
        }
        let mut bytes = Vec::with_capacity(layer.digest.len() + 1 + layer.blob.len());
        bytes.extend_from_slice(layer.digest.as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(&layer.blob);
        if write_atomic(
            &self.path(&layer.diff_id, c),
            &bytes,
            WriteOptions::cached(0o644),
        )
        .is_ok()
        {
            self.trim();
        }
    }

    /// Remove the least recently used blobs beyond the store's limits ([`KEEP`] blobs,
    /// [`KEEP_BYTES`] bytes).
    fn trim(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut kept: Vec<(std::time::SystemTime, u64, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        // Newest first; keep while both limits hold.
        kept.sort_by(|a, b| b.cmp(a));
        let mut bytes = 0u64;
        for (i, (_, len, path)) in kept.iter().enumerate() {
            bytes = bytes.saturating_add(*len);
            if i >= self.keep || bytes > self.keep_bytes {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(blob: &[u8], diff_id: &str) -> Compressed {
        Compressed {
            blob: blob.to_vec(),
            size: blob.len() as u64,
            digest: sha256_digest(blob),
            diff_id: diff_id.into(),
        }
    }

    #[test]
    fn a_blob_is_found_by_tar_compression_and_compressor_and_only_while_intact() {
        let d = tempfile::tempdir().unwrap();
        let store = LayerStore::new(d.path(), "kiln 1");
        let l = layer(b"gzip bytes", "sha256:aa");
        assert!(store.get("sha256:aa", Compression::Gzip).is_none());
        store.put(&l, Compression::Gzip);
        let got = store.get("sha256:aa", Compression::Gzip).unwrap();
        assert_eq!(
            (got.blob, got.digest, got.diff_id),
            (l.blob.clone(), l.digest.clone(), l.diff_id.clone())
        );
        assert!(
            store.get("sha256:ab", Compression::Gzip).is_none(),
            "other tar"
        );
        assert!(
            store.get("sha256:aa", Compression::Zstd).is_none(),
            "other compression"
        );
        assert!(
            LayerStore::new(d.path(), "kiln 2")
                .get("sha256:aa", Compression::Gzip)
                .is_none(),
            "other compressor"
        );
        // A damaged blob is not used.
        let path = store.path("sha256:aa", Compression::Gzip);
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(store.get("sha256:aa", Compression::Gzip).is_none());
        // Uncompressed layers are the tar: nothing to keep.
        store.put(&l, Compression::None);
        assert!(store.get("sha256:aa", Compression::None).is_none());
    }

    #[test]
    fn the_store_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let store = LayerStore::new(d.path(), "kiln");
        for i in 0..KEEP + 5 {
            store.put(
                &layer(&[i as u8], &format!("sha256:{i}")),
                Compression::Zstd,
            );
        }
        // File times are coarse: which of the same age go first is not fixed, how many is.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), KEEP);
    }

    /// Put `n` blobs of `size` bytes, each one second older than the next.
    fn put_aged(store: &LayerStore, n: usize, size: usize) -> Vec<PathBuf> {
        let start = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        (0..n)
            .map(|i| {
                let l = layer(&vec![i as u8; size], &format!("sha256:{i}"));
                store.put(&l, Compression::Gzip);
                let path = store.path(&l.diff_id, Compression::Gzip);
                let f = std::fs::File::options().append(true).open(&path).unwrap();
                f.set_modified(start + std::time::Duration::from_secs(i as u64))
                    .unwrap();
                path
            })
            .collect()
    }

    #[test]
    fn a_blob_a_build_uses_outlives_blobs_put_after_it() {
        let d = tempfile::tempdir().unwrap();
        let store = LayerStore::new(d.path(), "kiln");
        let paths = put_aged(&store, KEEP, 1);
        // The oldest is used by a build: the next put evicts the second oldest instead.
        assert!(store.get("sha256:0", Compression::Gzip).is_some());
        store.put(&layer(b"new", "sha256:new"), Compression::Gzip);
        assert!(paths[0].exists(), "the blob just used was evicted");
        assert!(!paths[1].exists(), "the least recently used blob was kept");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), KEEP);
    }

    #[test]
    fn the_store_is_bounded_in_bytes_too() {
        let d = tempfile::tempdir().unwrap();
        // Each kept file is a 72-byte digest line and a 100-byte blob.
        let store = LayerStore::new(d.path(), "kiln").with_limits(KEEP, 3 * 172 + 10);
        let paths = put_aged(&store, 5, 100);
        store.put(&layer(&[9; 100], "sha256:last"), Compression::Gzip);
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [false, false, false, true, true]);
        assert!(store.get("sha256:last", Compression::Gzip).is_some());
    }
}
