//! Single-file sinks: `oci-archive` (the OCI layout in a tar) and `docker-archive` (what
//! `docker save` writes and `docker load` reads: `manifest.json`, the config and one
//! uncompressed `layer.tar` per layer). Both are deterministic tars streamed from the
//! blobs where they are (no copy of the image in memory) to a temporary name that is renamed
//! into place, or to stdout for `-`. See [`destination`] for what may be replaced.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;

#[cfg(test)]
use super::LayerEntry;
use super::decode;
use super::json::to_canonical_vec;
use super::layer::LayerInfo;
use super::layout::{self, OCI_LAYOUT};
use super::transport::docker_reference;
use super::{BuiltImage, BuiltIndex};
use crate::error::UsageError;
use crate::target::{Platform, Targets};

fn hex(digest: &str) -> anyhow::Result<&str> {
    digest
        .strip_prefix("sha256:")
        .with_context(|| format!("`{digest}` is not a sha256 digest"))
}

/// Write the OCI layout of `index` as one tar file (or to stdout for `-`).
pub fn write_oci_archive(
    file_path: &Path,
    index: &BuiltIndex,
    tag: Option<&str>,
) -> anyhow::Result<()> {
    write_oci_archive_with(file_path, index, tag, &[])
}

/// [`write_oci_archive`] with OCI 1.1 referrers attached (listed in `index.json`).
pub fn write_oci_archive_with(
    file_path: &Path,
    index: &BuiltIndex,
    tag: Option<&str>,
    referrers: &[crate::oci::referrers::Referrer],
) -> anyhow::Result<()> {
    if let Some(t) = tag
        && !layout::valid_ref_name(t)
    {
        bail!("`{t}` is not a valid tag: use letters, digits and -._:@/+");
    }
    let dest = destination(file_path)?;
    let index_json = layout::merge_index_json(None, layout::index_descriptor(index, tag))
        .and_then(|j| layout::with_referrers(&j, referrers))?;
    let mut files: Vec<(String, &[u8])> = vec![
        ("oci-layout".into(), OCI_LAYOUT),
        ("index.json".into(), &index_json),
    ];
    for (d, b) in layout::all_blobs(index, referrers) {
        let path = format!("blobs/sha256/{}", hex(d)?);
        if !files.iter().any(|(p, _)| *p == path) {
            files.push((path, b));
        }
    }
    // Blobs are written from where they are: no copy of the image is assembled in memory.
    write_to(&dest, |w| {
        let mut t = TarWriter::new(w);
        for (path, bytes) in tree(files) {
            t.entry(&path, bytes)?;
        }
        t.finish()
    })
}

/// Where an archive goes, after [`destination`] checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `-`: streamed to standard output (`… -o docker-archive:- | docker load`).
    Stdout,
    /// A regular file, or a path where none exists yet (a symlink already followed).
    File(PathBuf),
}

/// Check an archive destination before anything is built. kiln replaces an archive whole
/// (a temporary file renamed over the path), which is only right for regular files: a
/// device, FIFO, socket or directory there is refused with a usage error (exit 2) instead
/// of being replaced, and `-` streams to stdout. A symlink is followed to a regular file
/// (the link stays, the file it names is replaced); one that leads anywhere else, or into
/// /proc, /sys or /dev, is refused.
pub fn destination(path: &Path) -> Result<Destination, UsageError> {
    if path == Path::new("-") {
        if std::io::stdout().is_terminal() {
            return Err(UsageError(
                "refusing to write an archive to a terminal: redirect standard output \
                 (`> image.tar`, `| docker load`) or name a file"
                    .into(),
            ));
        }
        return Ok(Destination::Stdout);
    }
    let refuse = |what: &str| {
        UsageError(format!(
            "archive destination {} {what}, not a regular file: kiln writes archives to a \
             temporary file and renames it into place, which would replace it. Name a regular \
             file, or stream the archive with `-` (e.g. `-o docker-archive:- | docker load`)",
            path.display()
        ))
    };
    let meta = match std::fs::symlink_metadata(path) {
        Err(_) => return Ok(Destination::File(path.to_path_buf())),
        Ok(m) => m,
    };
    if meta.is_file() {
        return Ok(Destination::File(path.to_path_buf()));
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path)
            .map_err(|_| refuse("is a symlink that leads nowhere (dangling or a loop)"))?;
        let special = ["/proc", "/sys", "/dev"]
            .iter()
            .any(|p| target.starts_with(p));
        return match std::fs::metadata(&target) {
            Ok(m) if m.is_file() && !special => Ok(Destination::File(target)),
            Ok(m) => Err(refuse(&format!(
                "is a symlink to {} ({})",
                target.display(),
                if special && m.is_file() {
                    "a kernel interface file"
                } else {
                    kind_of(&m)
                }
            ))),
            Err(_) => Err(refuse("is a symlink that leads nowhere")),
        };
    }
    Err(refuse(&format!("is {}", kind_of(&meta))))
}

fn kind_of(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Run `write` against the destination: stdout directly, a file through a temporary file
/// in its directory that is synced and renamed into place only when complete (and only if
/// the path is still a regular file or absent by then).
fn write_to(
    dest: &Destination,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    match dest {
        Destination::Stdout => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write(&mut out).and_then(|()| out.flush()).map_err(|e| {
                // Not an io::Error in the chain: a reader that went away got half an archive,
                // which is a failure, not the harmless closed pipe of a report.
                anyhow::anyhow!("writing the archive to standard output: {e}")
            })
        }
        Destination::File(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let tmp = tempfile::Builder::new()
                .prefix(".kiln-tmp-")
                .tempfile_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
            write(&mut w)
                .and_then(|()| w.flush())
                .with_context(|| format!("writing {}", tmp.path().display()))?;
            drop(w);
            {
                use std::os::unix::fs::PermissionsExt;
                // tempfile creates 0600 files; archives are meant to be shared.
                tmp.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644))
                    .and_then(|()| tmp.as_file().sync_all())
                    .with_context(|| format!("writing {}", tmp.path().display()))?;
            }
            // Checked again: something may have been put there while the archive was built.
            if destination(path)? != *dest {
                bail!("{} changed while the archive was written", path.display());
            }
            tmp.persist(path)
                .map_err(|e| e.error)
                .with_context(|| format!("renaming into {}", path.display()))?;
            Ok(())
        }
    }
}

/// Files and the directories above them, sorted by path: the order (and so the bytes) of
/// the tars kiln writes everywhere. `None` marks a directory.
fn tree(files: Vec<(String, &[u8])>) -> BTreeMap<String, Option<&[u8]>> {
    let mut out = BTreeMap::new();
    for (path, bytes) in files {
        let mut parent = String::new();
        let comps: Vec<&str> = path.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(c);
            out.entry(parent.clone()).or_insert(None);
        }
        out.insert(path, Some(bytes));
    }
    out
}

/// A deterministic tar written straight to a writer: the same headers as layer tars (GNU,
/// mode 0644 files and 0755 directories owned by 0:0, mtime 0, no user names), contents
/// copied from where they are.
struct TarWriter<'w> {
    w: &'w mut dyn Write,
}

impl<'w> TarWriter<'w> {
    fn new(w: &'w mut dyn Write) -> Self {
        TarWriter { w }
    }

    fn header(&mut self, path: &str, size: u64, dir: bool) -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_size(size);
        let mut b = tar::Builder::new(Vec::with_capacity(1024));
        b.mode(tar::HeaderMode::Deterministic);
        let name = if dir {
            format!("{path}/")
        } else {
            path.to_string()
        };
        // The builder gets no contents, so it writes only the header (and a long-name record
        // when the path needs one); taken before it is dropped, which would end the archive.
        b.append_data(&mut h, &name, std::io::empty())?;
        self.w.write_all(b.get_ref())?;
        b.get_mut().clear();
        Ok(())
    }

    /// A file (`Some`) or a directory (`None`).
    fn entry(&mut self, path: &str, bytes: Option<&[u8]>) -> std::io::Result<()> {
        match bytes {
            None => self.header(path, 0, true),
            Some(b) => {
                self.header(path, b.len() as u64, false)?;
                self.w.write_all(b)?;
                self.pad(b.len() as u64)
            }
        }
    }

    /// A file whose contents come from a reader that yields exactly `size` bytes.
    fn entry_from(&mut self, path: &str, size: u64, r: &mut dyn Read) -> std::io::Result<()> {
        self.header(path, size, false)?;
        let copied = std::io::copy(&mut r.take(size), &mut self.w)?;
        if copied != size {
            return Err(std::io::Error::other(format!(
                "{path}: expected {size} bytes, got {copied}"
            )));
        }
        self.pad(size)
    }

    fn pad(&mut self, len: u64) -> std::io::Result<()> {
        let n = ((512 - len % 512) % 512) as usize;
        self.w.write_all(&[0u8; 512][..n])
    }

    fn finish(self) -> std::io::Result<()> {
        self.w.write_all(&[0u8; 1024])
    }
}

/// The image a single-image sink writes: `wanted`, else the only one, else the host's.
pub fn pick_image<'a>(
    index: &'a BuiltIndex,
    wanted: Option<&Platform>,
) -> anyhow::Result<&'a BuiltImage> {
    let have = || {
        index
            .images
            .iter()
            .map(|i| i.platform.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted {
        return index
            .images
            .iter()
            .find(|i| &i.platform == w)
            .with_context(|| format!("the image has no {w} platform; it has {}", have()));
    }
    if let [only] = index.images.as_slice() {
        return Ok(only);
    }
    let host = Targets::builtin().all.into_iter().find(|t| t.is_host());
    host.and_then(|h| index.images.iter().find(|i| i.platform == h.platform))
        .with_context(|| {
            format!(
                "a docker archive holds one platform and this image has several ({}) but not this machine's: choose one",
                have()
            )
        })
}

/// Write one platform of `index` in `docker load` format.
pub fn write_docker_archive(
    file_path: &Path,
    index: &BuiltIndex,
    reference: Option<&str>,
    platform: Option<&Platform>,
) -> anyhow::Result<()> {
    let img = pick_image(index, platform)?;
    let blob = |d: &str| {
        index
            .blobs
            .get(d)
            .with_context(|| format!("blob {d} is missing from the built index"))
    };
    let config_name = format!("{}.json", hex(&img.config)?);
    let dest = destination(file_path)?;
    let config = blob(&img.config)?;
    // Each distinct layer once, under its diff_id.
    let mut layer_names = Vec::new();
    let mut layers: Vec<(String, &LayerInfo)> = Vec::new();
    for l in &img.layers {
        let name = format!("{}/layer.tar", hex(&l.diff_id)?);
        if !layer_names.contains(&name) {
            layers.push((name.clone(), l));
        }
        layer_names.push(name);
    }
    let repo_tags = match reference {
        Some(r) => json!([docker_reference(r)?]),
        None => json!(null),
    };
    let manifest = json!([{ "Config": config_name, "RepoTags": repo_tags, "Layers": layer_names }]);
    let manifest = to_canonical_vec(&manifest)?;
    // The sizes of the uncompressed layers, counted first (a tar header needs its size), so
    // each layer is decompressed straight into the archive instead of into memory.
    let mut sizes = BTreeMap::new();
    for (name, l) in &layers {
        let blob = blob(&l.digest)?;
        let n = std::io::copy(
            &mut decode::decoder(&blob[..], &l.media_type, "layer")?,
            &mut std::io::sink(),
        )
        .with_context(|| format!("decompressing layer {}", l.digest))?;
        sizes.insert(name.clone(), (n, blob, l.media_type.as_str()));
    }
    let mut files: Vec<(String, &[u8])> =
        vec![(config_name, config), ("manifest.json".into(), &manifest)];
    // Directories of the layers, with an empty placeholder replaced below.
    for name in sizes.keys() {
        files.push((name.clone(), &[]));
    }
    write_to(&dest, |w| {
        let mut t = TarWriter::new(w);
        for (path, bytes) in tree(files) {
            match (bytes, sizes.get(&path)) {
                (Some(_), Some((n, blob, mt))) => {
                    let mut r =
                        decode::decoder(&blob[..], mt, "layer").map_err(std::io::Error::other)?;
                    t.entry_from(&path, *n, &mut r)?;
                }
                _ => t.entry(&path, bytes)?,
            }
        }
        t.finish()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docker_archive_takes_the_asked_the_only_or_the_host_platform() {
        let image = |p: &str| crate::oci::PlatformImage {
            platform: p.parse().unwrap(),
            entries: vec![LayerEntry::bytes("/a", p.as_bytes().to_vec(), 0o644)],
            layers: Vec::new(),
            spec: Default::default(),
        };
        let two = crate::oci::build_index(
            &[image("linux/riscv64"), image("linux/s390x")],
            &Default::default(),
        )
        .unwrap();
        let s390x: Platform = "linux/s390x".parse().unwrap();
        assert_eq!(pick_image(&two, Some(&s390x)).unwrap().platform, s390x);
        let err = pick_image(&two, Some(&"linux/arm64".parse().unwrap())).unwrap_err();
        assert!(
            err.to_string()
                .contains("it has linux/riscv64, linux/s390x"),
            "{err}"
        );
        // Neither is this machine's (the tests run on amd64 or arm64).
        assert!(pick_image(&two, None).is_err());
        let one = crate::oci::build_index(&[image("linux/s390x")], &Default::default()).unwrap();
        assert_eq!(pick_image(&one, None).unwrap().platform, s390x);
        let host = Targets::builtin()
            .all
            .into_iter()
            .find(|t| t.is_host())
            .unwrap();
        let with_host = crate::oci::build_index(
            &[image("linux/s390x"), image(&host.platform.to_string())],
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            pick_image(&with_host, None).unwrap().platform,
            host.platform
        );
    }
}
