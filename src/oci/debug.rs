//! Debug twins (`--debug-image`), like distroless's `:debug` tags: the same image plus a
//! static busybox from Debian's `busybox-static` at `/busybox`, its applets on PATH and
//! `ENTRYPOINT ["/busybox/sh"]`. The package is pinned by sha256 in `kiln-base.lock` beside
//! the distroless packages (pinned on first use, checked on every later one).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};

use super::distroless::{self, LockFile, LockedPackage, status_d_entry};
use super::image::DEFAULT_PATH;
use super::{EntrySource, LayerEntry, NamedLayer, OutputSpec, PlatformImage};
use crate::error::UsageError;
use crate::exec::Cmd;
use crate::target::Platform;

/// The Debian package the busybox comes from.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";

/// Where busybox and its applet links go.
pub const BUSYBOX_DIR: &str = "/busybox";

/// The applets linked in `/busybox` (busybox-static has them all; these are the ones
/// looking inside a container needs).
pub const APPLETS: &[&str] = &[
    "[",
    "ash",
    "awk",
    "basename",
    "cat",
    "chmod",
    "cp",
    "cut",
    "date",
    "df",
    "dirname",
    "du",
    "echo",
    "env",
    "false",
    "find",
    "free",
    "grep",
    "gunzip",
    "gzip",
    "head",
    "hexdump",
    "hostname",
    "id",
    "ifconfig",
    "ip",
    "kill",
    "less",
    "ln",
    "ls",
    "md5sum",
    "mkdir",
    "more",
    "mount",
    "mv",
    "nc",
    "netstat",
    "nslookup",
    "od",
    "printf",
    "ps",
    "pwd",
    "readlink",
    "realpath",
    "rm",
    "sed",
    "sh",
    "sha256sum",
    "sleep",
    "sort",
    "stat",
    "strings",
    "tail",
    "tar",
    "tee",
    "test",
    "top",
    "touch",
    "tr",
    "true",
    "uname",
    "uniq",
    "vi",
    "wc",
    "wget",
    "which",
    "xargs",
];

/// Debian's name for a platform's architecture.
pub fn debian_arch(p: &Platform) -> Option<&'static str> {
    Some(match (p.architecture.as_str(), p.variant.as_deref()) {
        ("amd64", _) => "amd64",
        ("arm64", _) => "arm64",
        ("arm", Some("v6")) => "armel",
        ("arm", _) => "armhf",
        ("386", _) => "i386",
        ("riscv64", _) => "riscv64",
        ("ppc64le", _) => "ppc64el",
        ("s390x", _) => "s390x",
        ("loong64", _) => "loong64",
        _ => return None,
    })
}

/// The output a twin goes to: the same destination with `-debug` after the tag (`debug`
/// when untagged); archives get `-debug` before their extension.
pub fn twin_output(o: &OutputSpec) -> anyhow::Result<OutputSpec> {
    with_tag_suffix(o, "debug")
}

/// `o` with `-SUFFIX` after its tag (`SUFFIX` when untagged) and archives named
/// `FILE-SUFFIX.EXT`: where a debug twin or a `--variant all` variant goes.
pub fn with_tag_suffix(o: &OutputSpec, suffix: &str) -> anyhow::Result<OutputSpec> {
    let tag = |t: &Option<String>| {
        Some(match t {
            Some(t) => format!("{t}-{suffix}"),
            None => suffix.to_string(),
        })
    };
    let file = |f: &Path| -> anyhow::Result<std::path::PathBuf> {
        if f.as_os_str() == "-" {
            return Err(UsageError(format!(
                "the `{suffix}` image goes next to each output, and standard output holds one: \
                 write the image to a file or directory"
            ))
            .into());
        }
        let stem = f.file_stem().unwrap_or_default().to_string_lossy();
        let name = match f.extension() {
            Some(e) => format!("{stem}-{suffix}.{}", e.to_string_lossy()),
            None => format!("{stem}-{suffix}"),
        };
        Ok(f.with_file_name(name))
    };
    Ok(match o {
        OutputSpec::OciDir { dir, tag: t } => OutputSpec::OciDir {
            dir: dir.clone(),
            tag: tag(t),
        },
        OutputSpec::OciArchive { file: f, tag: t } => OutputSpec::OciArchive {
            file: file(f)?,
            tag: tag(t),
        },
        OutputSpec::DockerArchive {
            file: f,
            reference,
            platform,
        } => OutputSpec::DockerArchive {
            file: file(f)?,
            reference: reference.as_ref().map(|r| match r.rsplit_once(':') {
                Some((repo, t)) if !t.contains('/') => format!("{repo}:{t}-{suffix}"),
                _ => format!("{r}:{suffix}"),
            }),
            platform: platform.clone(),
        },
        OutputSpec::Registry(r) => {
            let mut r = r.clone();
            r.tag = tag(&r.tag);
            r.digest = None;
            OutputSpec::Registry(r)
        }
    })
}

/// The twin of each image: its layers plus a busybox layer (from `busybox[debian arch]`),
/// `/busybox/sh` as the entrypoint and `/busybox` last on PATH.
pub fn twins(
    images: &[PlatformImage],
    busybox: &BTreeMap<String, Vec<LayerEntry>>,
) -> anyhow::Result<Vec<PlatformImage>> {
    images
        .iter()
        .map(|img| {
            let arch = debian_arch(&img.platform).unwrap_or_default();
            let Some(entries) = busybox.get(arch) else {
                bail!("no busybox for {}", img.platform);
            };
            let mut twin = img.clone();
            twin.layers.push(NamedLayer {
                name: "debug".into(),
                entries: entries.clone(),
            });
            twin.spec.entrypoint = vec![format!("{BUSYBOX_DIR}/sh")];
            twin.spec.cmd = Vec::new();
            let path = twin
                .spec
                .env
                .iter()
                .find(|e| e.starts_with("PATH="))
                .cloned()
                .unwrap_or_else(|| DEFAULT_PATH.to_string());
            twin.spec.env.retain(|e| !e.starts_with("PATH="));
            twin.spec.env.insert(0, format!("{path}:{BUSYBOX_DIR}"));
            Ok(twin)
        })
        .collect()
}

/// The busybox layer's entries from a `busybox-static` .deb: `/busybox/busybox`, a link per
/// applet, and the package's `status.d` paragraph for scanners.
pub fn busybox_entries(deb: &[u8]) -> anyhow::Result<Vec<LayerEntry>> {
    let entries = distroless::deb_entries(deb)?;
    let bin = entries
        .into_iter()
        .find(|e| {
            e.path == "bin/busybox"
                && matches!(e.source, EntrySource::File(_) | EntrySource::Bytes(_))
        })
        .context("the busybox-static package has no bin/busybox")?;
    let mut out = vec![
        LayerEntry::dir(BUSYBOX_DIR, 0o755, 0),
        LayerEntry {
            path: format!("{BUSYBOX_DIR}/busybox"),
            source: bin.source,
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
    ];
    for a in APPLETS {
        out.push(LayerEntry {
            path: format!("{BUSYBOX_DIR}/{a}"),
            source: EntrySource::Symlink("busybox".into()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        });
    }
    out.push(status_d_entry(
        BUSYBOX_PACKAGE,
        &distroless::deb_control_text(deb)?,
    ));
    Ok(out)
}

/// This machine's Debian architecture and the foreign ones apt knows.
fn dpkg_arches() -> Vec<String> {
    let read = |arg: &str| {
        Cmd::new("dpkg", "ask dpkg for its architectures")
            .arg(arg)
            .read()
            .unwrap_or_default()
    };
    let mut out = vec![read("--print-architecture")];
    out.extend(
        read("--print-foreign-architectures")
            .lines()
            .map(str::to_string),
    );
    out
}

/// The busybox layer per Debian architecture of `platforms`, from the packages pinned in
/// `lock_path` (pinning those not there yet with `apt-get download` and writing the lock).
pub fn busybox_layers(
    lock_path: &Path,
    platforms: &[&Platform],
) -> anyhow::Result<BTreeMap<String, Vec<LayerEntry>>> {
    let mut lock = if lock_path.is_file() {
        LockFile::read(lock_path)?
    } else {
        LockFile {
            package: Vec::new(),
        }
    };
    let mut arches: Vec<&str> = Vec::new();
    for p in platforms {
        let a = debian_arch(p).ok_or_else(|| {
            UsageError(format!(
                "Debian has no busybox-static for {p}: no debug image for it"
            ))
        })?;
        if !arches.contains(&a) {
            arches.push(a);
        }
    }
    let pinned = |lock: &LockFile, a: &str| {
        lock.package
            .iter()
            .any(|p| p.name == BUSYBOX_PACKAGE && p.architecture == a)
    };
    let missing: Vec<&str> = arches
        .iter()
        .copied()
        .filter(|a| !pinned(&lock, a))
        .collect();
    if !missing.is_empty() {
        let known = dpkg_arches();
        if let Some(a) = missing.iter().find(|a| !known.iter().any(|k| k == *a)) {
            return Err(UsageError(format!(
                "the debug image for {a} needs Debian's {BUSYBOX_PACKAGE} for {a}, and apt on \
                 this machine does not know that architecture: run `dpkg --add-architecture \
                 {a} && apt-get update`, or pin it in {} from another machine",
                lock_path.display()
            ))
            .into());
        }
        let pinned = pin(&missing, None)?;
        for a in &missing {
            if !pinned.iter().any(|p| p.architecture == *a) {
                bail!("apt-get download left no {BUSYBOX_PACKAGE} for {a}");
            }
        }
        lock.package.extend(pinned);
        crate::fsutil::write_atomic(
            lock_path,
            lock.to_toml()?.as_bytes(),
            crate::fsutil::WriteOptions::DURABLE,
        )
        .with_context(|| format!("pinning {BUSYBOX_PACKAGE} in {}", lock_path.display()))?;
    }
    let wanted = LockFile {
        package: lock
            .package
            .into_iter()
            .filter(|p| p.name == BUSYBOX_PACKAGE && arches.contains(&p.architecture.as_str()))
            .collect(),
    };
    let mut out = BTreeMap::new();
    for (p, bytes) in distroless::fetch(&wanted, None)? {
        out.insert(
            p.architecture.clone(),
            busybox_entries(&bytes).with_context(|| format!("reading {}", p.filename))?,
        );
    }
    Ok(out)
}

/// Pin `busybox-static` for `arches`: the .deb files in `debs` when given, else those
/// `apt-get download` puts in kiln's cache. Architectures with no .deb are left out.
fn pin(arches: &[&str], debs: Option<&Path>) -> anyhow::Result<Vec<LockedPackage>> {
    let dir = match debs {
        Some(d) => d.to_path_buf(),
        None => {
            let dir = distroless::cache_dir();
            let specs: Vec<String> = arches
                .iter()
                .map(|a| format!("{BUSYBOX_PACKAGE}:{a}"))
                .collect();
            distroless::apt_download(&specs, &dir)?;
            dir
        }
    };
    let mut out = Vec::new();
    for a in arches {
        let found = fs_err::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&format!("{BUSYBOX_PACKAGE}_"))
                        && n.ends_with(&format!("_{a}.deb"))
                })
            })
            .max();
        let Some(found) = found else { continue };
        let bytes = fs_err::read(&found)?;
        let control = distroless::deb_control(&bytes)
            .with_context(|| format!("reading {}", found.display()))?;
        out.push(LockedPackage {
            name: BUSYBOX_PACKAGE.into(),
            version: control.get("Version").cloned().unwrap_or_default(),
            architecture: a.to_string(),
            filename: found
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            sha256: crate::digest::sha256_hex(&bytes),
        });
    }
    Ok(out)
}

/// `kiln base lock` over an existing lock: the debug twins' `busybox-static` pins of `old`,
/// pinned again at the current version (from `debs` when given, else apt). An architecture
/// that cannot be had here keeps its pin, with a warning saying why.
pub fn relock(
    old: &LockFile,
    debs: Option<&Path>,
) -> anyhow::Result<(Vec<LockedPackage>, Vec<String>)> {
    let olds: Vec<&LockedPackage> = old
        .package
        .iter()
        .filter(|p| p.name == BUSYBOX_PACKAGE)
        .collect();
    if olds.is_empty() {
        return Ok(Default::default());
    }
    let mut warnings = Vec::new();
    let known = if debs.is_none() {
        dpkg_arches()
    } else {
        Vec::new()
    };
    let wanted: Vec<&str> = olds
        .iter()
        .map(|p| p.architecture.as_str())
        .filter(|a| debs.is_some() || known.iter().any(|k| k == a))
        .collect();
    let pinned = if wanted.is_empty() {
        Vec::new()
    } else {
        pin(&wanted, debs)?
    };
    let mut out = Vec::new();
    for o in olds {
        match pinned.iter().find(|p| p.architecture == o.architecture) {
            Some(p) => out.push(p.clone()),
            None => {
                warnings.push(match debs {
                    Some(d) => format!(
                        "no {BUSYBOX_PACKAGE} .deb for {} in {}: kept its pin ({})",
                        o.architecture,
                        d.display(),
                        o.version
                    ),
                    None => format!(
                        "apt on this machine does not know {a}: kept the {BUSYBOX_PACKAGE} pin \
                         for {a} ({}); `dpkg --add-architecture {a} && apt-get update` pins the \
                         current one",
                        o.version,
                        a = o.architecture
                    ),
                });
                out.push(o.clone());
            }
        }
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twin_outputs_get_a_debug_tag() {
        let twin = |s: &str| {
            twin_output(&s.parse::<OutputSpec>().unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(twin("oci:out:1.0"), "oci:out:1.0-debug");
        assert_eq!(twin("oci:out"), "oci:out:debug");
        assert_eq!(
            twin("oci-archive:app.tar:v1"),
            "oci-archive:app-debug.tar:v1-debug"
        );
        assert_eq!(
            twin("docker-archive:app.tar:kiln/app:1"),
            "docker-archive:app-debug.tar:kiln/app:1-debug"
        );
        assert!(twin_output(&"oci-archive:-".parse::<OutputSpec>().unwrap()).is_err());
    }

    #[test]
    fn arches() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert_eq!(debian_arch(&p("linux/arm/v7")), Some("armhf"));
        assert_eq!(debian_arch(&p("linux/ppc64le")), Some("ppc64el"));
        assert_eq!(debian_arch(&p("linux/amd64")), Some("amd64"));
    }
}
