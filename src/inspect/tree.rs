//! A platform's root file system as a runtime would unpack it: layers applied in order,
//! streamed, with whiteouts, symlinks resolved inside the root, hard links, sparse files and
//! devices as umoci and containerd treat them. Only what the inspector needs is kept: ELF
//! reports, loader configuration text, and the shape of the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{Context, bail};

use crate::elf::{ElfError, ElfReport};
use crate::oci::whiteout::{self, Entry as Whiteout};

/// Symlink hops before giving up, as Linux does (ELOOP after 40).
const MAX_HOPS: usize = 40;
/// Largest loader configuration file kept (`/etc/ld.so.conf*`, `/etc/ld-musl-*.path`).
const MAX_CONF: u64 = 64 * 1024;
/// ELF files in a layer up to this size are inspected in memory; larger ones are copied to
/// a temporary file and mapped, so memory stays bounded.
const MAX_ELF_IN_MEMORY: u64 = 64 << 20;
/// Largest ELF file in a layer kiln inspects.
pub const MAX_ELF_IN_LAYER: u64 = 4 << 30;

/// Does a PAX header describe a sparse file (`GNU.sparse.*`), which the tar crate would hand
/// over as its raw map instead of its contents?
fn has_pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> anyhow::Result<bool> {
    let Some(exts) = entry.pax_extensions().context("reading PAX headers")? else {
        return Ok(false);
    };
    for e in exts {
        let e = e.context("reading PAX headers")?;
        if e.key_bytes().starts_with(b"GNU.sparse.") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A regular file's node: ELF files inspected, loader configuration kept as text, other
/// files skipped unread (only their first bytes are looked at).
fn read_file<R: Read>(path: &str, entry: &mut tar::Entry<'_, R>) -> anyhow::Result<Node> {
    let size = entry.size();
    let mut head = Vec::with_capacity(4);
    entry.by_ref().take(4).read_to_end(&mut head)?;
    if is_loader_conf(path) && size <= MAX_CONF {
        let mut text = head;
        entry.read_to_end(&mut text)?;
        return Ok(Node::File {
            elf: None,
            text: Some(String::from_utf8_lossy(&text).into_owned()),
        });
    }
    if !crate::elf::is_elf(&head) {
        return Ok(Node::File {
            elf: None,
            text: None,
        });
    }
    if size > MAX_ELF_IN_LAYER {
        let e = ElfError::Io(format!(
            "{size}-byte ELF file: kiln inspects files in images up to {MAX_ELF_IN_LAYER} bytes"
        ));
        return Ok(Node::File {
            elf: Some(Box::new(Err(e))),
            text: None,
        });
    }
    let report = if size <= MAX_ELF_IN_MEMORY {
        let mut data = head;
        data.reserve(size.min(MAX_ELF_IN_MEMORY) as usize);
        entry.read_to_end(&mut data)?;
        crate::elf::inspect_bytes(&data)
    } else {
        let mut tmp = tempfile::tempfile().context("creating a temporary file")?;
        std::io::Write::write_all(&mut tmp, &head)?;
        std::io::copy(entry, &mut tmp).context("copying an ELF file out of the layer")?;
        let len = tmp.metadata()?.len();
        let bytes = crate::fsutil::read_or_map(&tmp, len, false)?;
        crate::elf::inspect_bytes(&bytes)
    };
    Ok(Node::File {
        elf: Some(Box::new(report)),
        text: None,
    })
}

/// One path in the virtual tree.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Dir,
    File {
        /// The inspection of an ELF file; `None` for other files.
        elf: Option<Box<Result<ElfReport, ElfError>>>,
        /// Content of the loader's own configuration files.
        text: Option<String>,
    },
    Symlink(String),
    /// A device or FIFO: nothing to inspect, but it replaces what was at its path.
    Special,
}

/// A platform's root file system, after all layers.
#[derive(Debug, Default)]
pub(super) struct Tree {
    pub(super) nodes: BTreeMap<String, Node>,
}

/// `a/./b/../c` → `/a/c`; never climbs above `/`.
pub(super) fn norm(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

pub(super) fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn is_loader_conf(path: &str) -> bool {
    path == "/etc/ld.so.conf"
        || (path.starts_with("/etc/ld.so.conf.d/") && path.ends_with(".conf"))
        || (path.starts_with("/etc/ld-musl-") && path.ends_with(".path"))
}

impl Tree {
    /// Remove `path` and everything below it, except what `keep` holds (entries of the
    /// layer being applied, which an opaque whiteout does not hide).
    fn remove_below(&mut self, path: &str, keep: &BTreeSet<String>, include_self: bool) {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .filter(|k| !keep.contains(k))
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
        if include_self && !keep.contains(path) {
            self.nodes.remove(path);
        }
    }

    /// Apply one layer's tar, read as a stream: memory holds one entry header at a time,
    /// plus an ELF file's bytes up to [`MAX_ELF_IN_MEMORY`] (larger ones go through a
    /// temporary file), never the layer. Entries are seen as a runtime unpacking the layer
    /// (umoci, containerd) sees them: parents resolved through symlinks already in the
    /// tree, hard links through symlinks to their file, GNU sparse files expanded, devices
    /// and FIFOs replacing what was there. An entry kiln cannot interpret is an error.
    pub(super) fn apply(&mut self, reader: impl Read) -> anyhow::Result<()> {
        let mut added = BTreeSet::new();
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().context("reading the layer's tar")? {
            let mut entry = entry.context("reading a tar entry")?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let ty = entry.header().entry_type();
            if ty == tar::EntryType::XGlobalHeader {
                continue;
            }
            if has_pax_sparse(&mut entry)? {
                bail!(
                    "entry {raw} is a PAX-format sparse file, which kiln cannot read yet: the \
                     layer cannot be verified (repack it without --sparse)"
                );
            }
            let (dir, name) = self.place(&raw);
            // Whiteouts: `.wh..wh..opq` hides everything the lower layers had in its
            // directory, `.wh.NAME` hides NAME.
            match whiteout::classify(&name).with_context(|| format!("entry {raw}"))? {
                Whiteout::Opaque => {
                    self.remove_below(&dir, &added, false);
                    continue;
                }
                Whiteout::Hide(hidden) => {
                    let target = norm(&format!("{dir}/{hidden}"));
                    self.remove_below(&target, &added, true);
                    continue;
                }
                Whiteout::Plain => {}
            }
            let path = norm(&format!("{dir}/{name}"));
            let node = match ty {
                tar::EntryType::Directory => Node::Dir,
                _ if path == "/" => bail!(
                    "entry {raw} names the root directory but is not a directory: a runtime \
                     cannot unpack this layer"
                ),
                tar::EntryType::Symlink => Node::Symlink(
                    entry
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .with_context(|| format!("symlink {raw} has no target"))?,
                ),
                tar::EntryType::Link => {
                    // A hard link names an earlier path of the archive (or a lower layer);
                    // runtimes resolve it inside the root, symlinks included.
                    let target = entry
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .with_context(|| format!("hard link {raw} has no target"))?;
                    let found = self.resolve(&target).and_then(|t| self.nodes.get(&t));
                    match found {
                        Some(n) => n.clone(),
                        None => bail!(
                            "hard link {raw} points to {target}, which is not in the image at \
                             that point: a runtime cannot unpack this layer"
                        ),
                    }
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => read_file(&path, &mut entry)?,
                tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                    Node::Special
                }
                other => bail!(
                    "entry {raw} has tar type {:?} ({:?}), which kiln cannot interpret: the \
                     layer cannot be verified",
                    other,
                    other.as_byte() as char
                ),
            };
            // A file replacing a directory hides what was below it.
            if !matches!(node, Node::Dir) {
                self.remove_below(&path, &added, false);
            }
            added.insert(path.clone());
            self.nodes.insert(path, node);
        }
        // Read to the end: the layer's digests are checked there.
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
            .context("reading the end of the layer")?;
        Ok(())
    }

    /// Where an entry lands: its parent directory resolved through the symlinks already in
    /// the tree (as runtimes resolve it inside the root), and its own name.
    fn place(&self, raw: &str) -> (String, String) {
        let path = norm(raw);
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        let parent_dir = parent(&path);
        let dir = self
            .resolve_dir(parent_dir)
            .unwrap_or_else(|| parent_dir.to_string());
        (dir, name)
    }

    /// A directory path with every symlink in it followed (missing parts kept as they are).
    fn resolve_dir(&self, path: &str) -> Option<String> {
        let mut path = norm(path);
        'hop: for _ in 0..MAX_HOPS {
            let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
            let mut cur = String::new();
            for (i, c) in comps.iter().enumerate() {
                cur.push('/');
                cur.push_str(c);
                if let Some(Node::Symlink(target)) = self.nodes.get(&cur) {
                    let base = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{}/{target}", parent(&cur))
                    };
                    path = norm(&format!("{base}/{}", comps[i + 1..].join("/")));
                    continue 'hop;
                }
            }
            return Some(path);
        }
        None
    }

    /// Follow symlinks (in any component) to a regular file; `None` if missing or looping.
    pub(super) fn resolve(&self, path: &str) -> Option<String> {
        let path = self.resolve_dir(path)?;
        matches!(self.nodes.get(&path), Some(Node::File { .. })).then_some(path)
    }

    pub(super) fn text(&self, path: &str) -> Option<&str> {
        match self.nodes.get(&self.resolve(path)?) {
            Some(Node::File { text: Some(t), .. }) => Some(t),
            _ => None,
        }
    }

    /// Directories named by `/etc/ld.so.conf`, following `include` globs of the simple
    /// `DIR/*.conf` form every distribution uses.
    pub(super) fn ld_so_conf(&self) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut files = vec!["/etc/ld.so.conf".to_string()];
        let mut seen = BTreeSet::new();
        while let Some(f) = files.pop() {
            if !seen.insert(f.clone()) || seen.len() > 64 {
                continue;
            }
            let Some(text) = self.text(&f) else { continue };
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if let Some(pattern) = line.strip_prefix("include") {
                    let pattern = norm(pattern.trim());
                    let (dir, glob) = (
                        parent(&pattern).to_string(),
                        pattern.rsplit('/').next().unwrap_or(""),
                    );
                    let suffix = glob.strip_prefix('*').unwrap_or(glob);
                    let prefix = format!("{dir}/");
                    for k in self.nodes.range(prefix.clone()..).map(|(k, _)| k) {
                        if !k.starts_with(&prefix) {
                            break;
                        }
                        if k.ends_with(suffix) && !k[prefix.len()..].contains('/') {
                            files.push(k.clone());
                        }
                    }
                } else if line.starts_with('/') {
                    dirs.push(norm(line));
                }
            }
        }
        dirs
    }
}
