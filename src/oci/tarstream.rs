//! Deterministic tars in pieces: headers owned, large files mapped from disk, padding
//! borrowed, so a layer's tar is never assembled in one buffer unless asked.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use super::{EntrySource, LayerEntry};
use crate::digest;
use crate::fsutil::{FileBytes, read_or_map};

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

    /// Call `f` on the bytes `[start, end)` in order, as borrowed slices of the pieces.
    pub fn for_each_in(&self, start: usize, end: usize, mut f: impl FnMut(&[u8])) {
        let end = end.min(self.len);
        if start >= end {
            return;
        }
        let mut i = self.starts.partition_point(|&s| s <= start) - 1;
        let mut at = start;
        while at < end {
            let bytes = self.pieces[i].bytes();
            let from = at - self.starts[i];
            let take = (bytes.len() - from).min(end - at);
            f(&bytes[from..from + take]);
            at += take;
            i += 1;
        }
    }

    /// The bytes `[start, end)` were read for the last time, and so were those before
    /// them: let go of the memory that maps them (the pages of mapped files from the one
    /// holding `start`; the one holding `end` is left for the bytes after it). Reading them
    /// again still works (the pages come back from the page cache). Called while the layer
    /// is compressed, this spreads over the run the unmapping that otherwise came at its
    /// end: ~1.5 ms per 20 MiB, on one core, after the last byte was compressed.
    pub fn release(&self, start: usize, end: usize) {
        let end = end.min(self.len);
        if start >= end {
            return;
        }
        let page = crate::fsutil::page_size();
        let mut i = self.starts.partition_point(|&s| s <= start) - 1;
        while i < self.pieces.len() && self.starts[i] < end {
            if let Piece::File(FileBytes::Map(map)) = &self.pieces[i] {
                let from = start.saturating_sub(self.starts[i]) / page * page;
                let to = match (end - self.starts[i]).min(map.len()) {
                    n if n == map.len() => n,
                    n => n / page * page,
                };
                if to > from {
                    // SAFETY: the mapping is private and read-only, so no byte written
                    // through it can be lost; MADV_DONTNEED drops this process's page
                    // table entries for the range, and a later read faults the same file
                    // pages back in. A failure only leaves the pages mapped.
                    let _ = unsafe {
                        map.unchecked_advise_range(
                            memmap2::UncheckedAdvice::DontNeed,
                            from,
                            to - from,
                        )
                    };
                }
            }
            i += 1;
        }
    }

    /// Bytes of the mapped files that are mapped in this process now (resident in its page
    /// tables, from /proc/self/smaps), to see what [`TarStream::release`] let go.
    #[cfg(test)]
    pub(crate) fn mapped_resident(&self) -> usize {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut total = 0;
        for p in &self.pieces {
            let Piece::File(FileBytes::Map(map)) = p else {
                continue;
            };
            let start = format!("{:x}-", map.as_ptr() as usize);
            let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
            let rss = lines
                .find_map(|l| l.strip_prefix("Rss:"))
                .and_then(|kb| {
                    kb.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<usize>()
                        .ok()
                })
                .expect("the mapping is in smaps");
            total += rss * 1024;
        }
        total
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

/// A file's bytes for a layer: read when small, mapped when large. Not pre-faulted: the
/// compressing workers fault the pages in as they go, side by side, instead of one thread
/// mapping every page before compression starts.
fn map_file(src: &std::path::Path, path: &str) -> anyhow::Result<FileBytes> {
    // Looked at before opening: opening a FIFO blocks until a writer comes, forever.
    let kind = fs_err::metadata(src).with_context(|| format!("reading the file for /{path}"))?;
    if !kind.is_file() {
        bail!(
            "{} (for /{path}) is not a regular file (a directory, FIFO, socket or device): give \
             a file to copy into the image",
            src.display()
        );
    }
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
    read_or_map(f.file(), meta.len(), false)
        .with_context(|| format!("reading {} for /{path}", src.display()))
}
