//! kiln's distroless-like base: CA bundle, tzdata, passwd/group with nonroot (65532),
//! nsswitch.conf, os-release, services/protocols, mime.types, /home/nonroot and /tmp 1777,
//! in one deterministic layer. passwd, group and nsswitch.conf are written by kiln (as
//! Google's distroless does); everything else comes from the packages.
//!
//! The files come from real Debian packages pinned by sha256 in a lock file (`kiln base
//! lock` writes it; the .deb files come from a directory or from `apt-get download` with the
//! host's own apt configuration), so the base is the same on every machine. The `host`
//! source takes the same files from the running machine instead: quick, but only as
//! reproducible as that machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::base::BaseImage;
pub use super::deb::{DebEntry, deb_control, deb_control_text, deb_entries};
use super::layer::build_layer;
use super::{BuildOptions, EntrySource, LayerEntry};
use crate::exec::Cmd;

/// The Debian packages the base is made of.
pub const PACKAGES: &[&str] = &[
    "base-files",
    "ca-certificates",
    "media-types",
    "netbase",
    "tzdata",
];

/// The default lock file name, in the current directory.
pub const DEFAULT_LOCK: &str = "kiln-base.lock";

/// Where TLS libraries look for the bundle (Go, OpenSSL, rustls-native-certs).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where the distroless files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistrolessSource {
    /// The packages of a lock file; .deb files from `debs` (else kiln's cache, filled
    /// with `apt-get download`).
    Debs {
        lock: PathBuf,
        debs: Option<PathBuf>,
    },
    /// This machine's files.
    Host,
}

/// One pinned package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The .deb file name (`apt-get download` names it so).
    pub filename: String,
    pub sha256: String,
}

/// `kiln-base.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    pub package: Vec<LockedPackage>,
}

impl LockFile {
    pub fn read(path: &Path) -> anyhow::Result<LockFile> {
        let text = fs_err::read_to_string(path).with_context(|| {
            format!(
                "the distroless base needs a lock file: run `kiln base lock` to write {} (or use --distroless-from host)",
                path.display()
            )
        })?;
        toml::from_str(&text).with_context(|| format!("{} is not a kiln lock file", path.display()))
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(format!(
            "# The Debian packages of kiln's distroless base, pinned by sha256.\n# Written by `kiln base lock`; commit it.\n\n{}",
            toml::to_string(self)?
        ))
    }
}

/// kiln's cache of downloaded .deb files (under `$KILN_CACHE_DIR` like every cache).
pub(super) fn cache_dir() -> PathBuf {
    crate::fsutil::cache_dir().join("debs")
}

/// `apt-get download` the given `name[=version]`s into `dir` (the host's apt sources).
pub(super) fn apt_download(specs: &[String], dir: &Path) -> anyhow::Result<()> {
    fs_err::create_dir_all(dir)?;
    Cmd::new("apt-get", "download the Debian packages of the distroless base")
        .arg("download")
        .args(specs)
        .dir(dir)
        .run()
        .map_err(anyhow::Error::from)
        .context(
            "apt-get could not download the packages: run `apt-get update` first; if a pinned version is gone from the archive, `kiln base lock` pins the current ones; or pass a directory of .deb files with --debs",
        )?;
    Ok(())
}

/// Where distroless records its packages, one control paragraph per file, so image
/// scanners (trivy, syft, grype) find them without a `/var/lib/dpkg/status`.
pub const STATUS_D: &str = "/var/lib/dpkg/status.d";

/// The `status.d/<package>` entry of a package: its control paragraph, ending in a newline.
pub fn status_d_entry(package: &str, control: &str) -> LayerEntry {
    let mut text = control.trim_end().to_string();
    text.push('\n');
    LayerEntry::bytes(format!("{STATUS_D}/{package}"), text, 0o644)
}

/// Pin the packages: from the .deb files in `debs`, else downloaded with apt-get.
pub fn lock(debs: Option<&Path>) -> anyhow::Result<LockFile> {
    let tmp;
    let dir = match debs {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempfile::tempdir()?;
            let specs: Vec<String> = PACKAGES.iter().map(|p| p.to_string()).collect();
            apt_download(&specs, tmp.path())?;
            tmp.path().to_path_buf()
        }
    };
    let mut found: BTreeMap<String, LockedPackage> = BTreeMap::new();
    for e in fs_err::read_dir(&dir)? {
        let path = e?.path();
        if path.extension().is_none_or(|x| x != "deb") {
            continue;
        }
        let bytes = fs_err::read(&path)?;
        let control = deb_control(&bytes).with_context(|| format!("reading {}", path.display()))?;
        let name = control.get("Package").cloned().unwrap_or_default();
        if !PACKAGES.contains(&name.as_str()) {
            continue;
        }
        let p = LockedPackage {
            version: control.get("Version").cloned().unwrap_or_default(),
            architecture: control.get("Architecture").cloned().unwrap_or_default(),
            filename: path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            sha256: crate::digest::sha256_hex(&bytes),
            name: name.clone(),
        };
        if let Some(old) = found.get(&name)
            && old.version != p.version
        {
            bail!(
                "{} holds two versions of {name} ({} and {}): keep one",
                dir.display(),
                old.version,
                p.version
            );
        }
        // Keep downloaded files for the next build.
        if debs.is_none() {
            let cache = cache_dir();
            fs_err::create_dir_all(&cache)?;
            crate::fsutil::write_atomic(
                &cache.join(&p.filename),
                &bytes,
                crate::fsutil::WriteOptions::DURABLE,
            )?;
        }
        found.insert(name, p);
    }
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !found.contains_key(*p))
        .collect();
    if !missing.is_empty() {
        bail!("no .deb for {} in {}", missing.join(", "), dir.display());
    }
    Ok(LockFile {
        package: found.into_values().collect(),
    })
}

/// The .deb files of a lock, each checked against its sha256.
pub fn fetch(
    lock: &LockFile,
    debs: Option<&Path>,
) -> anyhow::Result<Vec<(LockedPackage, Vec<u8>)>> {
    let dir = debs.map_or_else(cache_dir, Path::to_path_buf);
    let missing: Vec<String> = lock
        .package
        .iter()
        .filter(|p| !dir.join(&p.filename).is_file())
        // The architecture too: base-files is per-architecture, and the lock pins the
        // one it was made with, whatever this machine is.
        .map(|p| format!("{}:{}={}", p.name, p.architecture, p.version))
        .collect();
    if !missing.is_empty() {
        if debs.is_some() {
            bail!(
                "{} lacks {}: put the .deb files there, or drop --debs to download them",
                dir.display(),
                missing.join(", ")
            );
        }
        apt_download(&missing, &dir)?;
    }
    lock.package
        .iter()
        .map(|p| {
            let path = dir.join(&p.filename);
            let bytes = fs_err::read(&path)?;
            let got = crate::digest::sha256_hex(&bytes);
            if got != p.sha256 {
                bail!(
                    "{} has sha256 {got} but the lock pins {}: the package changed; run `kiln base lock` to pin the new one",
                    path.display(),
                    p.sha256
                );
            }
            Ok((p.clone(), bytes))
        })
        .collect()
}

/// The files kiln writes itself: users, groups and their directories.
pub fn generated_entries() -> Vec<LayerEntry> {
    vec![
        LayerEntry::bytes(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/sbin/nologin\n\
              nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
              nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
                .to_vec(),
            0o644,
        ),
        // Debian's default (libc-bin's), without pulling in libc-bin for one file.
        LayerEntry::bytes(
            "/etc/nsswitch.conf",
            b"passwd:         files\n\
              group:          files\n\
              shadow:         files\n\
              gshadow:        files\n\
              \n\
              hosts:          files dns\n\
              networks:       files\n\
              \n\
              protocols:      db files\n\
              services:       db files\n\
              ethers:         db files\n\
              rpc:            db files\n\
              \n\
              netgroup:       nis\n"
                .to_vec(),
            0o644,
        ),
        LayerEntry::bytes(
            "/etc/group",
            b"root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n".to_vec(),
            0o644,
        ),
        LayerEntry::dir("/root", 0o700, 0),
        LayerEntry::dir("/home/nonroot", 0o700, 65532),
        LayerEntry::dir("/tmp", 0o1777, 0),
    ]
}

/// The CA bundle as update-ca-certificates writes it: every certificate the package ships,
/// in the (byte) order of the ca-certificates.conf its postinst generates, each ending in a
/// newline.
pub fn ca_bundle(entries: &[DebEntry]) -> anyhow::Result<Vec<u8>> {
    let mut certs: Vec<(&str, &[u8])> = entries
        .iter()
        .filter_map(|e| {
            let rel = e.path.strip_prefix("usr/share/ca-certificates/")?;
            match &e.source {
                EntrySource::Bytes(b) if rel.ends_with(".crt") => Some((rel, b.as_slice())),
                _ => None,
            }
        })
        .collect();
    certs.sort();
    if certs.is_empty() {
        bail!("the ca-certificates package holds no certificates");
    }
    let mut out = Vec::new();
    for (_, pem) in certs {
        out.extend_from_slice(pem);
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Paths a package contributes, as `(path in package, path in image)`; `None` skips.
fn wanted(package: &str, path: &str) -> Option<String> {
    let keep = match package {
        "tzdata" => path.starts_with("usr/share/zoneinfo/") || path == "usr/share/zoneinfo",
        "base-files" => matches!(path, "usr/lib/os-release" | "etc/os-release"),
        "netbase" => path.starts_with("etc/") && path != "etc",
        "media-types" => path == "etc/mime.types",
        _ => false,
    };
    if keep {
        return Some(format!("/{path}"));
    }
    // License texts travel with the files.
    (path == format!("usr/share/doc/{package}/copyright")).then(|| format!("/{path}"))
}

/// The layer entries of the base, from the packages' contents.
pub fn entries_from_debs(debs: &[(LockedPackage, Vec<u8>)]) -> anyhow::Result<Vec<LayerEntry>> {
    let mut out = generated_entries();
    for (p, deb) in debs {
        let entries = deb_entries(deb).with_context(|| format!("reading {}", p.filename))?;
        let control = deb_control_text(deb).with_context(|| format!("reading {}", p.filename))?;
        out.push(status_d_entry(&p.name, &control));
        if p.name == "ca-certificates" {
            out.push(LayerEntry::bytes(CA_BUNDLE, ca_bundle(&entries)?, 0o644));
        }
        for e in entries {
            if let Some(dst) = wanted(&p.name, &e.path) {
                out.push(LayerEntry {
                    path: dst,
                    source: e.source,
                    mode: e.mode,
                    uid: 0,
                    gid: 0,
                });
            }
        }
    }
    Ok(out)
}

/// The same files from this machine (those that exist).
pub fn entries_from_host() -> anyhow::Result<Vec<LayerEntry>> {
    let mut out = generated_entries();
    let files = [
        (CA_BUNDLE, CA_BUNDLE),
        ("/etc/os-release", "/etc/os-release"),
        ("/etc/services", "/etc/services"),
        ("/etc/protocols", "/etc/protocols"),
        ("/etc/mime.types", "/etc/mime.types"),
    ];
    for (src, dst) in files {
        // fs::read follows symlinks (os-release is one on Debian).
        if let Ok(b) = fs_err::read(src) {
            out.push(LayerEntry::bytes(dst, b, 0o644));
        }
    }
    if !out.iter().any(|e| e.path == CA_BUNDLE) {
        bail!(
            "this machine has no {CA_BUNDLE}: install ca-certificates, or use the pinned packages (`kiln base lock`)"
        );
    }
    let zoneinfo = Path::new("/usr/share/zoneinfo");
    if zoneinfo.is_dir() {
        walk(zoneinfo, &mut out)?;
    }
    Ok(out)
}

fn walk(root: &Path, out: &mut Vec<LayerEntry>) -> anyhow::Result<()> {
    for e in fs_err::read_dir(root)? {
        let e = e?;
        let path = e.path();
        let ft = e.file_type()?;
        let p = path.to_string_lossy().into_owned();
        if ft.is_symlink() {
            let target = fs_err::read_link(&path)?;
            out.push(LayerEntry {
                path: p,
                source: EntrySource::Symlink(target.to_string_lossy().into_owned()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            });
        } else if ft.is_dir() {
            out.push(LayerEntry::dir(p.as_str(), 0o755, 0));
            walk(&path, out)?;
        } else if ft.is_file() {
            out.push(LayerEntry::bytes(&p, fs_err::read(&path)?, 0o644));
        }
    }
    Ok(())
}

/// The base image for `src`: one layer, the same for every platform.
pub fn resolve(src: &DistrolessSource, opts: &BuildOptions) -> anyhow::Result<BaseImage> {
    let (entries, what) = match src {
        DistrolessSource::Debs { lock, debs } => {
            let mut l = LockFile::read(lock)?;
            // The lock also pins packages of other images (the debug twin's busybox).
            l.package.retain(|p| PACKAGES.contains(&p.name.as_str()));
            let debs_bytes = fetch(&l, debs.as_deref())?;
            let names: Vec<String> = l
                .package
                .iter()
                .map(|p| format!("{} {}", p.name, p.version))
                .collect();
            (
                entries_from_debs(&debs_bytes)?,
                format!("kiln: distroless base from {}", names.join(", ")),
            )
        }
        DistrolessSource::Host => (
            entries_from_host()?,
            "kiln: distroless base from the build machine's files".to_string(),
        ),
    };
    let warnings = match src {
        DistrolessSource::Host => vec![super::Warning(
            "the distroless base comes from this machine's files (--distroless-from host): another machine gives another image; pin Debian packages with `kiln base lock` for a reproducible base".into(),
        )],
        DistrolessSource::Debs { .. } => Vec::new(),
    };
    let layer = build_layer(
        &entries,
        opts.source_date_epoch.unwrap_or(0),
        opts.compression,
    )?;
    Ok(BaseImage {
        layers: vec![layer],
        config: None,
        env: vec![format!("SSL_CERT_FILE={CA_BUNDLE}")],
        history: vec![what],
        annotations: BTreeMap::new(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_order_and_newlines() {
        let e = |p: &str, b: &[u8]| DebEntry {
            path: p.into(),
            mode: 0o644,
            source: EntrySource::Bytes(b.to_vec()),
        };
        let entries = [
            e("usr/share/ca-certificates/mozilla/B.crt", b"B"),
            e("usr/share/ca-certificates/mozilla/A.crt", b"A\n"),
            e("usr/share/doc/ca-certificates/README", b"x"),
        ];
        assert_eq!(ca_bundle(&entries).unwrap(), b"A\nB\n");
        assert!(ca_bundle(&entries[2..]).is_err());
    }

    #[test]
    fn package_paths() {
        assert_eq!(
            wanted("tzdata", "usr/share/zoneinfo/Europe/Berlin").as_deref(),
            Some("/usr/share/zoneinfo/Europe/Berlin")
        );
        assert_eq!(
            wanted("base-files", "usr/share/base-files/nsswitch.conf"),
            None
        );
        assert_eq!(wanted("base-files", "etc/issue"), None);
        assert_eq!(
            wanted("netbase", "etc/services").as_deref(),
            Some("/etc/services")
        );
        assert_eq!(
            wanted("netbase", "usr/share/doc/netbase/copyright").as_deref(),
            Some("/usr/share/doc/netbase/copyright")
        );
        assert_eq!(wanted("netbase", "usr/share/doc/tzdata/copyright"), None);
    }

    #[test]
    fn status_d_entries_are_control_paragraphs() {
        let e = status_d_entry(
            "netbase",
            "Package: netbase\nVersion: 6.4\nArchitecture: all\n\n",
        );
        assert_eq!(e.path, "/var/lib/dpkg/status.d/netbase");
        assert_eq!(
            e.source,
            EntrySource::Bytes(b"Package: netbase\nVersion: 6.4\nArchitecture: all\n".to_vec())
        );
        assert_eq!(e.mode, 0o644);
    }

    #[test]
    fn lock_round_trips() {
        let l = LockFile {
            package: vec![LockedPackage {
                name: "netbase".into(),
                version: "6.4".into(),
                architecture: "all".into(),
                filename: "netbase_6.4_all.deb".into(),
                sha256: "00".repeat(32),
            }],
        };
        let text = l.to_toml().unwrap();
        assert!(text.starts_with("# The Debian packages"));
        assert_eq!(toml::from_str::<LockFile>(&text).unwrap(), l);
    }
}
