//! Deterministic layers: a sorted tar with every parent directory, fixed times, owners and
//! modes and no host user names, compressed with fixed settings. Same entries ⇒ same bytes
//! ⇒ same digests, on any machine.

use std::io::Read;

use anyhow::Context;

pub use super::compress::{
    BlobSink, BlobWriter, Compressed, GZIP_LEVEL, GZIP_MEMBER, ZSTD_LEVEL, compress_all,
};
pub use super::tarstream::{TarStream, build_tar, normalize_path};
use super::{Compression, LayerEntry};
#[cfg(test)]
use super::{
    EntrySource,
    compress::{Pool, gzip_member},
};
pub use crate::digest::sha256_digest;

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
    /// The compressed (or plain, for `Compression::None`) tar; empty for kiln's own layers
    /// when every output took them as they were made (`BuiltIndex::ahead`).
    pub blob: Vec<u8>,
    /// The blob's length.
    pub size: u64,
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
            size: self.size,
        }
    }
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
    layer_from_stream(&TarStream::build(entries, mtime)?, c)
}

fn layer_from_stream(tar: &TarStream, c: Compression) -> anyhow::Result<Layer> {
    let Compressed {
        blob,
        size,
        digest,
        diff_id,
    } = compress_all(&[tar], c, &[], true)?
        .pop()
        .expect("one tar in, one blob out");
    Ok(Layer {
        media_type: media_type(c).to_string(),
        digest,
        diff_id,
        blob,
        size,
    })
}

/// Decompress a layer blob of the given media type into its tar.
pub fn decompress(blob: &[u8], media_type: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    super::decode::decoder(blob, media_type, "layer")?
        .read_to_end(&mut out)
        .context("decompressing a layer")?;
    Ok(out)
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

    /// Bytes that compress like code: a repeating pattern with some noise.
    fn codeish(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2654435761) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 7 == 0 { x as u8 } else { (i % 61) as u8 }
            })
            .collect()
    }

    /// A layer with every kind of piece: mapped large files, read small and empty files,
    /// bytes, directories, a symlink and a path that needs a GNU long-name record.
    fn mixed(dir: &std::path::Path, big_len: usize) -> Vec<LayerEntry> {
        std::fs::write(dir.join("big"), codeish(big_len, 1)).unwrap();
        std::fs::write(dir.join("small"), b"tiny").unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        let long = format!("/opt/{}/file", "d".repeat(150));
        vec![
            LayerEntry::file("/usr/local/bin/big", dir.join("big"), 0o755),
            LayerEntry::file("/etc/small", dir.join("small"), 0o600),
            LayerEntry::file("/etc/empty", dir.join("empty"), 0o644),
            LayerEntry::bytes(long, codeish(1000, 2), 0o644),
            LayerEntry::bytes("/etc/odd", vec![1u8; 513], 0o644),
            LayerEntry {
                path: "/usr/bin/app".into(),
                source: EntrySource::Symlink("../local/bin/big".into()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        ]
    }

    #[test]
    fn pieces_make_a_tar_that_gnu_tar_reads() {
        let dir = tempfile::tempdir().unwrap();
        let entries = mixed(dir.path(), 300_000);
        let tar = build_tar(&entries, 7).unwrap();
        assert!(tar.len().is_multiple_of(512));
        let file = dir.path().join("layer.tar");
        std::fs::write(&file, &tar).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&file)
            .arg("-C")
            .arg(&root)
            .output()
            .expect("GNU tar runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for e in &entries {
            let at = root.join(e.path.trim_start_matches('/'));
            match &e.source {
                EntrySource::File(src) => {
                    assert_eq!(std::fs::read(&at).unwrap(), std::fs::read(src).unwrap())
                }
                EntrySource::Bytes(b) => assert_eq!(&std::fs::read(&at).unwrap(), b),
                EntrySource::Symlink(t) => {
                    assert_eq!(std::fs::read_link(&at).unwrap().to_str(), Some(t.as_str()))
                }
                EntrySource::Dir => assert!(at.is_dir()),
            }
        }
    }

    #[test]
    fn ranges_borrow_within_a_piece_and_gather_across() {
        let dir = tempfile::tempdir().unwrap();
        let stream = TarStream::build(&mixed(dir.path(), 300_000), 0).unwrap();
        let whole = stream.to_vec();
        assert_eq!(stream.len(), whole.len());
        let mut buf = Vec::new();
        let len = whole.len();
        let mut cuts = vec![0, 1, 511, 512, 513, 4096, len - 1, len];
        cuts.extend((0..200).map(|i| i * 7919 % len));
        for &a in &cuts {
            for &b in &[a, a + 1, a + 600, a + 100_000, len + 5] {
                let got = stream.range(a, b, &mut buf).to_vec();
                assert_eq!(
                    got,
                    whole[a.min(len)..b.min(len).max(a.min(len))],
                    "[{a}, {b})"
                );
            }
        }
    }

    #[test]
    fn gzip_layers_are_fixed_size_members_that_any_gzip_reads() {
        let dir = tempfile::tempdir().unwrap();
        let stream = TarStream::build(&mixed(dir.path(), 2 * GZIP_MEMBER + 12345), 0).unwrap();
        let tar = stream.to_vec();
        let blob = compress_all(&[&stream], Compression::Gzip, &[], true)
            .unwrap()
            .pop()
            .unwrap()
            .blob;
        // The same bytes whatever the number of workers: members compressed one by one,
        // each into the buffer the one before it left (longer than it needs).
        let n = tar.len().div_ceil(GZIP_MEMBER);
        let pool = Pool::new(n);
        let members: Vec<Vec<u8>> = (0..n)
            .map(|m| {
                let member = gzip_member(&stream, m, &pool).unwrap();
                let bytes = member.bytes().to_vec();
                pool.put(member);
                bytes
            })
            .collect();
        assert_eq!(members.len(), 3);
        assert_eq!(blob, members.concat());
        // A single-member reader stops after the first 1 MiB; readers of the whole stream
        // (Go's, gzip(1), flate2's MultiGzDecoder) get the tar back.
        let mut first = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&blob[..]), &mut first)
            .unwrap();
        assert_eq!(first, tar[..GZIP_MEMBER]);
        assert_eq!(decompress(&blob, MEDIA_LAYER_GZIP).unwrap(), tar);
        let gz = dir.path().join("layer.tar.gz");
        std::fs::write(&gz, &blob).unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&gz)
            .output()
            .expect("gzip runs");
        assert!(out.status.success());
        assert_eq!(out.stdout, tar);
        // Member cuts cost little: within 0.5% of one stream.
        let one = {
            let mut c =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(GZIP_LEVEL).unwrap());
            let mut out = vec![0; c.gzip_compress_bound(tar.len())];
            c.gzip_compress(&tar, &mut out).unwrap()
        };
        assert!(blob.len() * 1000 <= one * 1005, "{} vs {one}", blob.len());
    }
}
