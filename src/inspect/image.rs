//! Image inputs for `kiln inspect`: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
//! `docker-archive:FILE`. Each platform's layers are applied in order, with whiteouts, to a
//! virtual file tree; every ELF file left in it is inspected and checked against that
//! platform, and for dynamic files the interpreter and each needed library must resolve
//! inside the image, the way the loader would look for them. That is what tells you a binary
//! will not start in a scratch or distroless image before anyone runs it.
//!
//! Layers are streamed: ELF files are inspected as their layer is read and only the report
//! is kept, so memory holds one ELF file (up to 64 MiB; larger ones go through a temporary
//! file) plus small reports, whatever the size of the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{Context, bail};

use super::report::{FileEntry, Inspection};
use super::verify::{Policy, Problem, verify_linkage, verify_platform};
use crate::elf::{ElfError, ElfReport, Kind, Libc, Linkage};
use crate::oci::read::PlatformManifest;
use crate::oci::read_image;

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

pub use crate::oci::transport::is_image_ref;

/// One path in the virtual tree.
#[derive(Debug, Clone)]
enum Node {
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
struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// `a/./b/../c` → `/a/c`; never climbs above `/`.
fn norm(path: &str) -> String {
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

fn parent(path: &str) -> &str {
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
    fn apply(&mut self, reader: impl Read) -> anyhow::Result<()> {
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
            // Whiteouts (OCI image spec, "Representation of changes"): `.wh..wh..opq` hides
            // everything the lower layers had in its directory, `.wh.NAME` hides NAME.
            if name == ".wh..wh..opq" {
                self.remove_below(&dir, &added, false);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    bail!("entry {raw} is a whiteout that names no file");
                }
                let target = norm(&format!("{dir}/{hidden}"));
                self.remove_below(&target, &added, true);
                continue;
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
    fn resolve(&self, path: &str) -> Option<String> {
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
            return matches!(self.nodes.get(&path), Some(Node::File { .. })).then_some(path);
        }
        None
    }

    fn text(&self, path: &str) -> Option<&str> {
        match self.nodes.get(&self.resolve(path)?) {
            Some(Node::File { text: Some(t), .. }) => Some(t),
            _ => None,
        }
    }

    /// Directories named by `/etc/ld.so.conf`, following `include` globs of the simple
    /// `DIR/*.conf` form every distribution uses.
    fn ld_so_conf(&self) -> Vec<String> {
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

/// The Debian/Ubuntu multiarch triplet glibc uses for library directories.
fn multiarch(report: &ElfReport) -> Option<&'static str> {
    Some(match report.arch? {
        "amd64" => "x86_64-linux-gnu",
        "arm64" => "aarch64-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        "386" => "i386-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "ppc64le" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "loong64" => "loongarch64-linux-gnu",
        "mips64le" => "mips64el-linux-gnuabi64",
        _ => return None,
    })
}

/// musl's loader *is* libc: it answers for these names itself instead of loading a file
/// (ldso/dynlink.c, "Catch and block attempts to reload the implementation itself").
fn musl_provides(name: &str) -> bool {
    [
        "libc.",
        "libpthread.",
        "librt.",
        "libm.",
        "libdl.",
        "libutil.",
        "libxnet.",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Where the loader looks for `report`'s libraries, in order.
fn search_path(tree: &Tree, report: &ElfReport, origin: &str, env: &[String]) -> Vec<String> {
    let expand = |d: &String| d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin);
    let mut dirs: Vec<String> = Vec::new();
    // DT_RPATH only counts when there is no DT_RUNPATH.
    if report.runpath.is_empty() {
        dirs.extend(report.rpath.iter().map(expand));
    }
    for e in env {
        if let Some(v) = e.strip_prefix("LD_LIBRARY_PATH=") {
            dirs.extend(v.split(':').filter(|d| !d.is_empty()).map(str::to_owned));
        }
    }
    dirs.extend(report.runpath.iter().map(expand));
    let musl = report.libc == Some(Libc::Musl)
        || report
            .interpreter
            .as_deref()
            .is_some_and(|i| i.contains("ld-musl"));
    if musl {
        // musl reads /etc/ld-musl-ARCH.path, else uses its built-in default.
        let conf = tree
            .nodes
            .keys()
            .filter(|k| k.starts_with("/etc/ld-musl-") && k.ends_with(".path"))
            .find_map(|k| tree.text(k));
        match conf {
            Some(t) => dirs.extend(
                t.split([':', '\n'])
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned),
            ),
            None => dirs.extend(["/lib", "/usr/local/lib", "/usr/lib"].map(String::from)),
        }
    } else {
        // glibc: ld.so.cache is built from ld.so.conf plus the trusted directories, so
        // those are what the cache would hold.
        dirs.extend(tree.ld_so_conf());
        if let Some(t) = multiarch(report) {
            dirs.push(format!("/lib/{t}"));
            dirs.push(format!("/usr/lib/{t}"));
        }
        if report.class == 64 {
            dirs.extend(["/lib64", "/usr/lib64"].map(String::from));
        }
        dirs.extend(["/lib", "/usr/lib"].map(String::from));
    }
    let mut seen = BTreeSet::new();
    dirs.into_iter()
        .map(|d| norm(&d))
        .filter(|d| seen.insert(d.clone()))
        .collect()
}

/// The `Unresolved` problem for a dynamic file, if something it needs is missing.
fn check_resolution(
    tree: &Tree,
    path: &str,
    report: &ElfReport,
    env: &[String],
) -> Option<Problem> {
    if report.linkage != Linkage::Dynamic || report.kind == Kind::Relocatable {
        return None;
    }
    let mut missing = Vec::new();
    if let Some(interp) = &report.interpreter
        && tree.resolve(interp).is_none()
    {
        missing.push(format!("the loader {interp}"));
    }
    let dirs = search_path(tree, report, parent(path), env);
    let musl = report
        .interpreter
        .as_deref()
        .is_some_and(|i| i.contains("ld-musl"));
    for lib in &report.needed {
        if musl && musl_provides(lib) {
            continue;
        }
        let found = if lib.contains('/') {
            tree.resolve(lib).is_some()
        } else {
            dirs.iter()
                .any(|d| tree.resolve(&format!("{d}/{lib}")).is_some())
        };
        if !found {
            missing.push(lib.clone());
        }
    }
    (!missing.is_empty()).then_some(Problem::Unresolved {
        missing,
        searched: dirs,
    })
}

/// Inspect every ELF file of every platform of an image (only `--arch`'s platform when
/// given).
pub fn inspect_image(reference: &str, policy: &Policy) -> anyhow::Result<Inspection> {
    let image = read_image(reference)?;
    let wanted: Vec<&PlatformManifest> = match &policy.target {
        Some(t) => vec![image.for_platform(&t.platform)?],
        None => image.platforms.iter().collect(),
    };
    let mut out = Inspection::default();
    for pm in wanted {
        inspect_platform(reference, pm, policy, &mut out)
            .with_context(|| format!("inspecting the {} image of {reference}", pm.platform))?;
    }
    Ok(out)
}

fn inspect_platform(
    reference: &str,
    pm: &PlatformManifest,
    policy: &Policy,
    out: &mut Inspection,
) -> anyhow::Result<()> {
    let mut tree = Tree::default();
    for layer in &pm.layers {
        tree.apply(layer.open()?)
            .with_context(|| format!("applying layer {}", layer.digest))?;
    }
    let env: Vec<String> = pm
        .config
        .config()
        .as_ref()
        .and_then(|c| c.env().clone())
        .unwrap_or_default();
    let platform = pm.platform.to_string();
    for (path, node) in &tree.nodes {
        let elf = match node {
            Node::File { elf: Some(elf), .. } => elf,
            Node::File { elf: None, .. } => {
                out.summary.skipped_non_elf += 1;
                continue;
            }
            Node::Symlink(_) => {
                out.summary.skipped_symlinks += 1;
                continue;
            }
            Node::Special => {
                out.summary.skipped_special += 1;
                continue;
            }
            Node::Dir => continue,
        };
        let mut entry = match elf.as_ref() {
            Ok(report) => {
                let mut problems = verify_linkage(report, policy.require);
                problems.extend(verify_platform(report, &pm.platform));
                problems.extend(check_resolution(&tree, path, report, &env));
                FileEntry::checked(path.clone(), report.clone(), problems)
            }
            Err(e) => FileEntry::error(path.clone(), e.to_string()),
        };
        entry.image = Some(reference.to_string());
        entry.platform = Some(platform.clone());
        out.push(entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, Node)]) -> Tree {
        let mut t = Tree::default();
        for (p, n) in entries {
            t.nodes.insert(norm(p), n.clone());
        }
        t
    }

    fn file() -> Node {
        Node::File {
            elf: None,
            text: None,
        }
    }

    #[test]
    fn paths_normalize_and_never_escape_root() {
        assert_eq!(norm("./usr/bin/../lib/"), "/usr/lib");
        assert_eq!(norm("../../etc/passwd"), "/etc/passwd");
        assert_eq!(norm(""), "/");
        assert_eq!(parent("/lib"), "/");
        assert_eq!(parent("/usr/lib/x"), "/usr/lib");
    }

    #[test]
    fn symlinks_resolve_in_any_component_and_loops_end() {
        let t = tree(&[
            ("/lib64", Node::Symlink("usr/lib64".into())),
            (
                "/usr/lib64/ld.so",
                Node::Symlink("../lib/x86_64/ld-2.36.so".into()),
            ),
            ("/usr/lib/x86_64/ld-2.36.so", file()),
            ("/a", Node::Symlink("/b".into())),
            ("/b", Node::Symlink("a".into())),
            ("/dangling", Node::Symlink("/nowhere".into())),
        ]);
        assert_eq!(
            t.resolve("/lib64/ld.so").as_deref(),
            Some("/usr/lib/x86_64/ld-2.36.so")
        );
        assert_eq!(t.resolve("/a"), None);
        assert_eq!(t.resolve("/dangling"), None);
        assert_eq!(
            t.resolve("/usr/lib64"),
            None,
            "a directory is not a loadable file"
        );
    }

    #[test]
    fn ld_so_conf_includes_are_followed() {
        let conf = |s: &str| Node::File {
            elf: None,
            text: Some(s.into()),
        };
        let t = tree(&[
            (
                "/etc/ld.so.conf",
                conf("include /etc/ld.so.conf.d/*.conf\n/opt/first # c\n"),
            ),
            ("/etc/ld.so.conf.d/a.conf", conf("/opt/a\n")),
            (
                "/etc/ld.so.conf.d/x86_64.conf",
                conf("/usr/local/lib/x86_64\n"),
            ),
            ("/etc/ld.so.conf.d/ignored.txt", conf("/nope\n")),
        ]);
        let mut dirs = t.ld_so_conf();
        dirs.sort();
        assert_eq!(dirs, ["/opt/a", "/opt/first", "/usr/local/lib/x86_64"]);
    }

    /// A layer tar as `tar` writes it: (path, kind, content or link target).
    fn layer(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            if kind.is_symlink() || kind.is_hard_link() {
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_apply_with_hard_links_whiteouts_and_opaque_dirs() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let elf = std::fs::read("tests/fixtures/elf/amd64-static").unwrap();
        let mut t = Tree::default();
        t.apply(
            &layer(&[
                ("bin/", Directory, b""),
                ("bin/app", Regular, &elf),
                ("bin/app-link", Link, b"bin/app"),
                ("bin/sh", Symlink, b"app"),
                ("etc/keep", Regular, b"x"),
                ("opt/a/old", Regular, b"x"),
            ])[..],
        )
        .unwrap();
        assert!(matches!(
            t.nodes.get("/bin/app-link"),
            Some(Node::File { elf: Some(r), .. }) if r.is_ok()
        ));
        assert_eq!(t.resolve("/bin/sh").as_deref(), Some("/bin/app"));

        t.apply(
            &layer(&[
                ("bin/.wh.app", Regular, b""),
                ("opt/a/.wh..wh..opq", Regular, b""),
                ("opt/a/new", Regular, b"x"),
                // A file where a directory was hides the directory's contents.
                ("etc", Regular, b"x"),
            ])[..],
        )
        .unwrap();
        let paths: Vec<&str> = t.nodes.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["/bin", "/bin/app-link", "/bin/sh", "/etc", "/opt/a/new"],
            "whiteout, opaque directory and replaced directory applied"
        );
        assert_eq!(t.resolve("/bin/sh"), None, "its target was whited out");
        // A tar entry whose data runs past the end of the layer is an error, not a panic.
        let mut cut = layer(&[("big", Regular, &elf)]);
        cut.truncate(1024);
        let _ = Tree::default().apply(&cut[..]);
    }

    #[test]
    fn musl_loader_provides_libc_names() {
        assert!(musl_provides("libc.so"));
        assert!(musl_provides("libc.musl-x86_64.so.1"));
        assert!(musl_provides("libpthread.so.0"));
        assert!(!musl_provides("libcrypto.so.3"));
        assert!(!musl_provides("libz.so.1"));
    }
}
