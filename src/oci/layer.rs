//! Deterministic layers: a sorted tar with every parent directory, fixed times, owners and
//! modes and no host user names, compressed with fixed settings. Same entries ⇒ same bytes
//! ⇒ same digests, on any machine.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};
use sha2::{Digest as _, Sha256};

use super::{Compression, EntrySource, LayerEntry};

/// gzip level: fixed, because the compressed bytes (and so the layer digest) depend on it.
/// libdeflate's level 1: on a 20 MiB binary it is as fast as zlib's level 1 and within 5%
/// of zlib's level 6 in size (zlib's level 1 is 30% larger), so packing stays fast without
/// making pulls slower. libdeflate writes no name, mtime 0 and OS 255 in the header.
pub const GZIP_LEVEL: i32 = 1;
/// zstd level, fixed for the same reason.
pub const ZSTD_LEVEL: i32 = 3;

/// OCI media types of layers.
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A layer ready to be referenced by a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub media_type: String,
    /// `sha256:…` of `blob`.
    pub digest: String,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
    /// The compressed (or plain, for `Compression::None`) tar.
    pub blob: Vec<u8>,
}

/// A layer's identity without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub media_type: String,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
}

impl Layer {
    pub fn info(&self) -> LayerInfo {
        LayerInfo {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            diff_id: self.diff_id.clone(),
            size: self.blob.len() as u64,
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The media type of a layer compressed with `c`.
pub fn media_type(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => MEDIA_LAYER_GZIP,
        Compression::Zstd => MEDIA_LAYER_ZSTD,
        Compression::None => MEDIA_LAYER_TAR,
    }
}

/// Build the tar and compress it.
pub fn build_layer(entries: &[LayerEntry], mtime: u64, c: Compression) -> anyhow::Result<Layer> {
    let tar = build_tar(entries, mtime)?;
    layer_from_tar(tar, c)
}

/// Compress an uncompressed tar into a layer.
pub fn layer_from_tar(tar: Vec<u8>, c: Compression) -> anyhow::Result<Layer> {
    let diff_id = sha256_digest(&tar);
    finish_layer(&tar, diff_id, c)
}

/// Compress a tar whose digest (`diff_id`) is already known.
pub fn finish_layer(tar: &[u8], diff_id: String, c: Compression) -> anyhow::Result<Layer> {
    let blob = compress(tar, c)?;
    Ok(Layer {
        media_type: media_type(c).to_string(),
        digest: sha256_digest(&blob),
        diff_id,
        blob,
    })
}

/// Compress with fixed settings. The gzip header carries no file name, mtime 0 and OS 255
/// ("unknown"), so it does not depend on the machine. The whole tar is in memory already,
/// so gzip uses libdeflate's one-shot compressor.
pub fn compress(tar: &[u8], c: Compression) -> anyhow::Result<Vec<u8>> {
    match c {
        Compression::None => Ok(tar.to_vec()),
        Compression::Gzip => {
            let level = libdeflater::CompressionLvl::new(GZIP_LEVEL)
                .map_err(|e| anyhow::anyhow!("gzip level {GZIP_LEVEL}: {e:?}"))?;
            let mut c = libdeflater::Compressor::new(level);
            let mut out = vec![0u8; c.gzip_compress_bound(tar.len())];
            let n = c
                .gzip_compress(tar, &mut out)
                .map_err(|e| anyhow::anyhow!("gzip-compressing a layer: {e}"))?;
            out.truncate(n);
            Ok(out)
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(tar.len() / 2), ZSTD_LEVEL)
                .context("starting zstd")?;
            enc.include_checksum(true).context("zstd option")?;
            enc.set_pledged_src_size(Some(tar.len() as u64))
                .context("zstd option")?;
            enc.include_contentsize(true).context("zstd option")?;
            enc.write_all(tar).context("zstd-compressing a layer")?;
            Ok(enc.finish().context("zstd-compressing a layer")?)
        }
    }
}

/// Decompress a layer blob of the given media type into its tar.
pub fn decompress(blob: &[u8], media_type: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") || blob.starts_with(&[0x1f, 0x8b]) {
        std::io::copy(&mut flate2::read::MultiGzDecoder::new(blob), &mut out)
            .context("decompressing a gzip layer")?;
    } else if media_type.ends_with("zstd") || blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out = zstd::stream::decode_all(blob).context("decompressing a zstd layer")?;
    } else {
        out = blob.to_vec();
    }
    Ok(out)
}

/// What one tar entry will be, after paths are normalised and parents added.
#[derive(Debug, Clone)]
struct Node<'a> {
    source: &'a EntrySource,
    mode: u32,
    uid: u64,
    gid: u64,
    /// Added because a child needs it, not asked for.
    implied: bool,
}

const DIR: EntrySource = EntrySource::Dir;

/// `/usr//local/./bin/` → `usr/local/bin`; `..` and empty paths are errors.
pub fn normalize_path(path: &str) -> anyhow::Result<String> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                bail!("layer path `{path}` contains `..`: use an absolute path inside the image")
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        bail!(
            "layer path `{path}` names the root directory: give a file path like /usr/local/bin/app"
        );
    }
    Ok(parts.join("/"))
}

/// The uncompressed layer tar: entries sorted by path, parent directories created
/// (0755, owned by 0:0), every mtime `mtime`, GNU headers with empty user and group names.
pub fn build_tar(entries: &[LayerEntry], mtime: u64) -> anyhow::Result<Vec<u8>> {
    let mut nodes: BTreeMap<String, Node<'_>> = BTreeMap::new();
    for e in entries {
        let path = normalize_path(&e.path)?;
        let mut parent = String::new();
        for comp in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, p)| p)
            .unwrap_or(&[])
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            let n = nodes.entry(parent.clone()).or_insert(Node {
                source: &DIR,
                mode: 0o755,
                uid: 0,
                gid: 0,
                implied: true,
            });
            if !matches!(n.source, EntrySource::Dir) {
                bail!(
                    "layer path `{}` is used both as a file and as a directory",
                    e.path
                );
            }
        }
        let node = Node {
            source: &e.source,
            mode: e.mode & 0o7777,
            uid: e.uid,
            gid: e.gid,
            implied: false,
        };
        match nodes.get(&path) {
            None => {
                nodes.insert(path, node);
            }
            Some(old) if old.implied && matches!(e.source, EntrySource::Dir) => {
                nodes.insert(path, node);
            }
            Some(_) => bail!(
                "layer path `{}` is given twice: each path in an image layer must be unique",
                e.path
            ),
        }
    }

    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, n) in &nodes {
        let mut h = tar::Header::new_gnu();
        h.set_mode(n.mode);
        h.set_uid(n.uid);
        h.set_gid(n.gid);
        h.set_mtime(mtime);
        match n.source {
            EntrySource::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                builder
                    .append_data(&mut h, format!("{path}/"), std::io::empty())
                    .with_context(|| format!("adding directory /{path} to a layer"))?;
            }
            EntrySource::Bytes(b) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(b.len() as u64);
                builder
                    .append_data(&mut h, path, b.as_slice())
                    .with_context(|| format!("adding /{path} to a layer"))?;
            }
            EntrySource::File(src) => {
                let f = fs_err::File::open(src)
                    .with_context(|| format!("reading the file for /{path}"))?;
                let len = f
                    .metadata()
                    .with_context(|| format!("reading the file for /{path}"))?
                    .len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                // `take` guards against a file that grows while we read it.
                builder
                    .append_data(&mut h, path, std::io::Read::take(f, len))
                    .with_context(|| format!("adding {} as /{path} to a layer", src.display()))?;
            }
            EntrySource::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                builder
                    .append_link(&mut h, path, target)
                    .with_context(|| format!("adding symlink /{path} to a layer"))?;
            }
        }
    }
    builder.into_inner().context("finishing a layer tar")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &[u8], mode: u32) -> LayerEntry {
        LayerEntry {
            path: path.into(),
            source: EntrySource::Bytes(data.to_vec()),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// (path, type, mode, uid, gid, mtime, uname, gname) of an entry.
    type Fields = (String, char, u32, u64, u64, u64, Vec<u8>, Vec<u8>);

    fn headers(tar: &[u8]) -> Vec<Fields> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                    h.entry_type().as_byte() as char,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    h.username_bytes().unwrap_or_default().to_vec(),
                    h.groupname_bytes().unwrap_or_default().to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn sorted_with_parents_and_fixed_fields() {
        let mut entries = vec![
            file("/usr/local/bin/hello", b"hi", 0o755),
            file("/etc/passwd", b"root", 0o644),
            LayerEntry {
                path: "/tmp".into(),
                source: EntrySource::Dir,
                mode: 0o1777,
                uid: 0,
                gid: 0,
            },
            LayerEntry {
                path: "/home/nonroot".into(),
                source: EntrySource::Dir,
                mode: 0o700,
                uid: 65532,
                gid: 65532,
            },
        ];
        let tar = build_tar(&entries, 1700000000).unwrap();
        let h = headers(&tar);
        let names: Vec<_> = h.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/passwd",
                "home/",
                "home/nonroot/",
                "tmp/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/hello"
            ]
        );
        for e in &h {
            assert_eq!(e.5, 1700000000, "{}", e.0);
            assert!(e.6.is_empty() && e.7.is_empty(), "user names in {}", e.0);
        }
        let hello = h.iter().find(|e| e.0 == "usr/local/bin/hello").unwrap();
        assert_eq!((hello.1, hello.2), ('0', 0o755));
        let tmp = h.iter().find(|e| e.0 == "tmp/").unwrap();
        assert_eq!((tmp.1, tmp.2), ('5', 0o1777));
        let home = h.iter().find(|e| e.0 == "home/nonroot/").unwrap();
        assert_eq!((home.2, home.3, home.4), (0o700, 65532, 65532));
        // Input order does not matter.
        entries.reverse();
        assert_eq!(build_tar(&entries, 1700000000).unwrap(), tar);
    }

    #[test]
    fn header_bytes_are_gnu_with_zeroed_extras() {
        let tar = build_tar(&[file("/a", b"x", 0o644)], 0).unwrap();
        let h = &tar[0..512];
        assert_eq!(&h[0..2], b"a\0");
        assert_eq!(&h[257..265], b"ustar  \0", "GNU magic");
        assert_eq!(&h[100..108], b"0000644\0", "mode");
        assert_eq!(&h[136..148], b"00000000000\0", "mtime");
        assert!(h[265..297].iter().all(|&b| b == 0), "uname");
        assert!(h[297..329].iter().all(|&b| b == 0), "gname");
        // GNU atime/ctime are zero.
        assert!(h[345..369].iter().all(|&b| b == 0 || b == b'0'));
        // Two 512-byte zero blocks end the archive.
        assert!(tar.len().is_multiple_of(512) && tar[tar.len() - 1024..].iter().all(|&b| b == 0));
    }

    #[test]
    fn long_paths_survive() {
        let long = format!("/opt/{}/file", "d".repeat(150));
        let tar = build_tar(&[file(&long, b"x", 0o644)], 0).unwrap();
        let names: Vec<_> = headers(&tar).into_iter().map(|e| e.0).collect();
        assert_eq!(names.last().unwrap(), &long[1..]);
    }

    #[test]
    fn bad_paths_and_duplicates_are_errors() {
        assert!(build_tar(&[file("/a/../b", b"", 0o644)], 0).is_err());
        assert!(build_tar(&[file("/", b"", 0o644)], 0).is_err());
        let e = build_tar(&[file("/a", b"", 0o644), file("a", b"", 0o644)], 0).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(build_tar(&[file("/a", b"", 0o644), file("/a/b", b"", 0o644)], 0).is_err());
    }

    #[test]
    fn gzip_header_has_no_name_or_time() {
        let l = build_layer(&[file("/a", b"x", 0o644)], 0, Compression::Gzip).unwrap();
        // ID1 ID2 CM FLG MTIME(4) XFL OS
        assert_eq!(
            &l.blob[0..4],
            &[0x1f, 0x8b, 8, 0],
            "no FNAME/FEXTRA/FCOMMENT flags"
        );
        assert_eq!(&l.blob[4..8], &[0, 0, 0, 0], "mtime 0");
        assert_eq!(l.blob[9], 255, "OS unknown");
        assert_eq!(l.media_type, MEDIA_LAYER_GZIP);
        assert_eq!(l.digest, sha256_digest(&l.blob));
        let tar = decompress(&l.blob, &l.media_type).unwrap();
        assert_eq!(l.diff_id, sha256_digest(&tar));
    }

    #[test]
    fn compressions_round_trip_and_repeat() {
        let entries = [file("/bin/x", &[7u8; 10000], 0o755)];
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let a = build_layer(&entries, 5, c).unwrap();
            let b = build_layer(&entries, 5, c).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.media_type, media_type(c));
            assert_eq!(
                sha256_digest(&decompress(&a.blob, &a.media_type).unwrap()),
                a.diff_id
            );
        }
        let none = build_layer(&entries, 5, Compression::None).unwrap();
        assert_eq!(none.digest, none.diff_id);
    }
}
