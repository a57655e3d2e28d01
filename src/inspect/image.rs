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

use std::collections::BTreeSet;

use anyhow::Context;

use super::report::{FileEntry, Inspection};
use super::tree::{Node, Tree, norm, parent};
use super::verify::{Policy, Problem, verify_linkage, verify_platform};
use crate::elf::{ElfReport, Kind, Libc, Linkage};
use crate::oci::read::PlatformManifest;
use crate::oci::read_image;

pub use crate::oci::transport::is_image_ref;

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
    for a in crate::oci::read_attachments(reference, &image)? {
        out.attestations.push(super::AttestationEntry {
            image: reference.to_string(),
            platform: image
                .platforms
                .iter()
                .find(|p| p.manifest_digest == a.subject)
                .map(|p| p.platform.to_string()),
            attachment: a,
        });
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
