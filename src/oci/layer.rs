//! Deterministic layers: a sorted tar with every parent directory, fixed times, owners and
//! modes and no host user names, compressed with fixed settings. Same entries ⇒ same bytes
//! ⇒ same digests, on any machine.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, bail};

use super::{Compression, EntrySource, LayerEntry};
use crate::digest::{self, sha256_digest};
use crate::fsutil::{FileBytes, read_or_map};

/// A gzip layer is a series of gzip members, one per this many bytes of tar (RFC 1952
/// allows any number; Go's gzip reader, and so docker, containerd, skopeo and umoci, reads
/// them as one stream, as eStargz layers rely on). Members are compressed in parallel, so a
/// single large binary uses every core; the cut points are fixed, so the bytes do not
/// depend on the number of cores. At 1 MiB the size cost is under 0.1%.
pub const GZIP_MEMBER: usize = 1 << 20;

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
    let Compressed { blob, digest } = compress_all(&[tar], c)?
        .pop()
        .expect("one tar in, one blob out");
    Ok(Layer {
        media_type: media_type(c).to_string(),
        digest,
        diff_id: tar.diff_id(),
        blob,
    })
}

/// A compressed layer blob and its `sha256:` digest.
pub struct Compressed {
    pub blob: Vec<u8>,
    pub digest: String,
}

impl Compressed {
    fn of(blob: Vec<u8>) -> Compressed {
        Compressed {
            digest: sha256_digest(&blob),
            blob,
        }
    }
}

/// The members of one layer's gzip as they come in from the workers.
struct Parts {
    members: Vec<Option<Vec<u8>>>,
    left: usize,
}

/// Compress each tar with fixed settings and hash the result, using every core: gzip
/// members of all the tars are one pool of work, and the worker that finishes a layer's
/// last member joins and hashes that layer while the others compress on; zstd compresses
/// one tar per core. The gzip header of each member carries no file name, mtime 0 and OS
/// 255 ("unknown"), so nothing depends on the machine.
pub fn compress_all(tars: &[&TarStream], c: Compression) -> anyhow::Result<Vec<Compressed>> {
    match c {
        Compression::None => Ok(super::par_map(tars, |t| Compressed::of(t.to_vec()))),
        Compression::Zstd => super::par_map(tars, |t| zstd_compress(t).map(Compressed::of))
            .into_iter()
            .collect(),
        Compression::Gzip => {
            let counts: Vec<usize> = tars
                .iter()
                .map(|t| t.len().div_ceil(GZIP_MEMBER).max(1))
                .collect();
            let jobs: Vec<(usize, usize)> = counts
                .iter()
                .enumerate()
                .flat_map(|(t, &n)| (0..n).map(move |m| (t, m)))
                .collect();
            let parts: Vec<std::sync::Mutex<Parts>> = counts
                .iter()
                .map(|&n| {
                    std::sync::Mutex::new(Parts {
                        members: vec![None; n],
                        left: n,
                    })
                })
                .collect();
            let done = super::par_map(&jobs, |&(t, m)| {
                let member = gzip_member(tars[t], m)?;
                let finished = {
                    let mut p = parts[t].lock().unwrap_or_else(|e| e.into_inner());
                    p.members[m] = Some(member);
                    p.left -= 1;
                    (p.left == 0).then(|| std::mem::take(&mut p.members))
                };
                Ok::<_, anyhow::Error>(finished.map(|members| {
                    let members: Vec<Vec<u8>> = members.into_iter().flatten().collect();
                    let mut blob = Vec::with_capacity(members.iter().map(Vec::len).sum());
                    for m in &members {
                        blob.extend_from_slice(m);
                    }
                    (t, Compressed::of(blob))
                }))
            });
            let mut out: Vec<Option<Compressed>> = tars.iter().map(|_| None).collect();
            for d in done {
                if let Some((t, c)) = d? {
                    out[t] = Some(c);
                }
            }
            Ok(out
                .into_iter()
                .map(|c| c.expect("every layer's last member joins it"))
                .collect())
        }
    }
}

/// One worker's gzip state: the compressor, its output buffer, and a buffer for a member
/// that spans several pieces of the tar.
struct GzipWorker {
    compressor: libdeflater::Compressor,
    out: Vec<u8>,
    gather: Vec<u8>,
}

thread_local! {
    static GZIP: std::cell::RefCell<Option<GzipWorker>> = const { std::cell::RefCell::new(None) };
}

/// Member `m` of a tar's gzip: the tar bytes `[m * GZIP_MEMBER, (m + 1) * GZIP_MEMBER)`.
fn gzip_member(tar: &TarStream, m: usize) -> anyhow::Result<Vec<u8>> {
    GZIP.with(|cell| {
        let mut state = cell.borrow_mut();
        if state.is_none() {
            let level = libdeflater::CompressionLvl::new(GZIP_LEVEL)
                .map_err(|e| anyhow::anyhow!("gzip level {GZIP_LEVEL}: {e:?}"))?;
            *state = Some(GzipWorker {
                compressor: libdeflater::Compressor::new(level),
                out: Vec::new(),
                gather: Vec::new(),
            });
        }
        let GzipWorker {
            compressor,
            out,
            gather,
        } = state.as_mut().expect("set above");
        let start = m * GZIP_MEMBER;
        let end = (start + GZIP_MEMBER).min(tar.len());
        let input = tar.range(start, end, gather);
        let bound = compressor.gzip_compress_bound(input.len());
        if out.len() < bound {
            out.resize(bound, 0);
        }
        let n = compressor
            .gzip_compress(input, out)
            .map_err(|e| anyhow::anyhow!("gzip-compressing a layer: {e}"))?;
        Ok(out[..n].to_vec())
    })
}

fn zstd_compress(tar: &TarStream) -> anyhow::Result<Vec<u8>> {
    let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(tar.len() / 2), ZSTD_LEVEL)
        .context("starting zstd")?;
    enc.include_checksum(true).context("zstd option")?;
    enc.set_pledged_src_size(Some(tar.len() as u64))
        .context("zstd option")?;
    enc.include_contentsize(true).context("zstd option")?;
    for piece in tar.pieces() {
        enc.write_all(piece).context("zstd-compressing a layer")?;
    }
    enc.finish().context("zstd-compressing a layer")
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
    Ok(TarStream::build(entries, mtime)?.to_vec())
}

/// Zeros for padding and the end of the archive.
static ZEROS: [u8; 1024] = [0; 1024];

/// A layer tar in pieces: headers and small contents owned, large files mapped from disk,
/// padding borrowed from [`ZEROS`]. Large binaries are never copied into one buffer; the
/// compressors read the mapped pages directly.
pub struct TarStream {
    pieces: Vec<Piece>,
    /// Offset of each piece in the tar.
    starts: Vec<usize>,
    len: usize,
}

enum Piece {
    Owned(Vec<u8>),
    File(FileBytes),
    Zeros(usize),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Owned(v) => v,
            Piece::File(f) => f,
            Piece::Zeros(n) => &ZEROS[..*n],
        }
    }
}

impl TarStream {
    fn from_pieces(pieces: Vec<Piece>) -> TarStream {
        let pieces: Vec<Piece> = pieces
            .into_iter()
            .filter(|p| !p.bytes().is_empty())
            .collect();
        let mut starts = Vec::with_capacity(pieces.len());
        let mut len = 0;
        for p in &pieces {
            starts.push(len);
            len += p.bytes().len();
        }
        TarStream {
            pieces,
            starts,
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(Piece::bytes)
    }

    /// The whole tar in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in self.pieces() {
            out.extend_from_slice(p);
        }
        out
    }

    /// `sha256:…` of the tar: the layer's diff_id.
    pub fn diff_id(&self) -> String {
        let mut h = digest::Hasher::new();
        for p in self.pieces() {
            h.update(p);
        }
        h.finish_digest()
    }

    /// The bytes `[start, end)`: borrowed when they lie in one piece, else gathered into
    /// `buf`.
    pub fn range<'a>(&'a self, start: usize, end: usize, buf: &'a mut Vec<u8>) -> &'a [u8] {
        let end = end.min(self.len);
        if start >= end {
            return &[];
        }
        // The piece holding `start`: the last one starting at or before it.
        let first = self.starts.partition_point(|&s| s <= start) - 1;
        let piece_end = self.starts[first] + self.pieces[first].bytes().len();
        if end <= piece_end {
            let off = start - self.starts[first];
            return &self.pieces[first].bytes()[off..off + (end - start)];
        }
        buf.clear();
        let mut i = first;
        while buf.len() < end - start {
            let bytes = self.pieces[i].bytes();
            let from = (start + buf.len()) - self.starts[i];
            let take = (bytes.len() - from).min(end - start - buf.len());
            buf.extend_from_slice(&bytes[from..from + take]);
            i += 1;
        }
        buf
    }

    /// The tar of `entries` (see [`build_tar`]).
    pub fn build(entries: &[LayerEntry], mtime: u64) -> anyhow::Result<TarStream> {
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

        // Each entry's header (with a GNU long-name record before it when the path needs one)
        // comes from the tar crate; contents and padding are pieces of their own.
        let header = |h: &mut tar::Header, path: &str, link: Option<&str>| {
            let mut b = tar::Builder::new(Vec::with_capacity(512));
            b.mode(tar::HeaderMode::Deterministic);
            // Contents are added by the caller, so the builder copies none (and pads none).
            match link {
                Some(target) => b.append_link(h, path, target),
                None => b.append_data(h, path, std::io::empty()),
            }
            .with_context(|| format!("adding /{path} to a layer"))?;
            // Taken before the builder is dropped: finishing would append the archive's end.
            Ok::<_, anyhow::Error>(Piece::Owned(std::mem::take(b.get_mut())))
        };
        let mut pieces = Vec::new();
        for (path, n) in &nodes {
            let mut h = tar::Header::new_gnu();
            h.set_mode(n.mode);
            h.set_uid(n.uid);
            h.set_gid(n.gid);
            h.set_mtime(mtime);
            let data = match n.source {
                EntrySource::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    pieces.push(header(&mut h, &format!("{path}/"), None)?);
                    continue;
                }
                EntrySource::Symlink(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    pieces.push(header(&mut h, path, Some(target))?);
                    continue;
                }
                EntrySource::Bytes(b) => Piece::Owned(b.clone()),
                EntrySource::File(src) => Piece::File(map_file(src, path)?),
            };
            let len = data.bytes().len();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(len as u64);
            pieces.push(header(&mut h, path, None)?);
            pieces.push(data);
            pieces.push(Piece::Zeros((512 - len % 512) % 512));
        }
        pieces.push(Piece::Zeros(1024));
        Ok(TarStream::from_pieces(pieces))
    }
}

/// A file's bytes for a layer: read when small, mapped (and pre-faulted: every byte is
/// compressed) when large.
fn map_file(src: &std::path::Path, path: &str) -> anyhow::Result<FileBytes> {
    let f = fs_err::File::open(src).with_context(|| format!("reading the file for /{path}"))?;
    let meta = f
        .metadata()
        .with_context(|| format!("reading the file for /{path}"))?;
    if !meta.is_file() {
        bail!(
            "{} (for /{path}) is not a regular file: give a file to copy into the image",
            src.display()
        );
    }
    read_or_map(f.file(), meta.len(), true)
        .with_context(|| format!("reading {} for /{path}", src.display()))
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
        let blob = compress_all(&[&stream], Compression::Gzip)
            .unwrap()
            .pop()
            .unwrap()
            .blob;
        // The same bytes whatever the number of workers: members compressed one by one.
        let members: Vec<Vec<u8>> = (0..tar.len().div_ceil(GZIP_MEMBER))
            .map(|m| gzip_member(&stream, m).unwrap())
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
