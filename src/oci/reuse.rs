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

/// How many blobs a store keeps (the oldest go first): a few builds' worth of platforms.
pub const KEEP: usize = 48;

/// A directory of compressed layer blobs by tar digest, compression and compressor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStore {
    dir: PathBuf,
    salt: String,
}

impl LayerStore {
    /// Blobs under `dir`, valid for the compressor `salt` names (e.g. a fingerprint of the
    /// running executable).
    pub fn new(dir: &Path, salt: &str) -> LayerStore {
        LayerStore {
            dir: dir.to_path_buf(),
            salt: salt.to_string(),
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
        if c == Compression::None {
            return None;
        }
        let bytes = std::fs::read(self.path(diff_id, c)).ok()?;
        let nl = bytes.iter().position(|&b| b == b'\n')?;
        let digest = std::str::from_utf8(&bytes[..nl]).ok()?.to_string();
        let blob = bytes[nl + 1..].to_vec();
        (sha256_digest(&blob) == digest).then(|| Compressed {
            size: blob.len() as u64,
            blob,
            digest,
            diff_id: diff_id.to_string(),
        })
    }

    /// Keep `layer` (compressed with `c`). Best effort: a store that cannot be written
    /// only means compressing again next time.
    pub fn put(&self, layer: &Compressed, c: Compression) {
        if c == Compression::None || std::fs::create_dir_all(&self.dir).is_err() {
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

    /// Remove the oldest blobs beyond [`KEEP`].
    fn trim(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut kept: Vec<(std::time::SystemTime, PathBuf)> = rd
            .flatten()
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if kept.len() <= KEEP {
            return;
        }
        kept.sort();
        for (_, p) in &kept[..kept.len() - KEEP] {
            let _ = std::fs::remove_file(p);
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
}
