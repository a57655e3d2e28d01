//! Freshness: skipping a build step whose inputs have not changed since it last succeeded,
//! as cargo and make do. A fingerprint covers every file under the project (path, size,
//! modification time), the toolchain binary, kiln itself, the environment variables the
//! step reads and its exact command line; a step is skipped only when that fingerprint
//! matches the one recorded after its last success and its outputs are still the files it
//! wrote then. Anything kiln cannot see cheaply (more files than [`MAX_FILES`], an
//! unreadable directory) means no fingerprint, and the step runs.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Hasher;
use crate::exec::Cmd;

/// Trees larger than this are not fingerprinted (walking them could cost more than the
/// step it would skip).
pub const MAX_FILES: usize = 20_000;

/// The record a step leaves next to its outputs.
const RECORD: &str = ".kiln-fresh.json";

/// An incremental SHA-256 over labelled fields.
pub struct Fingerprint(Hasher);

impl Fingerprint {
    pub fn new(kind: &str) -> Fingerprint {
        let mut f = Fingerprint(Hasher::new());
        f.field("kind", kind.as_bytes());
        f.field("kiln", env!("CARGO_PKG_VERSION").as_bytes());
        // A rebuilt kiln may build differently: its own executable is an input.
        if let Ok(exe) = std::env::current_exe() {
            f.file("kiln-exe", &exe);
        }
        f
    }

    /// A fingerprint that extends `base` (a finished one, which already covers kiln).
    pub fn extending(kind: &str, base: &str) -> Fingerprint {
        let mut f = Fingerprint(Hasher::new());
        f.field("kind", kind.as_bytes());
        f.field("base", base.as_bytes());
        f
    }

    /// A labelled value; lengths are hashed too, so fields cannot run into each other.
    pub fn field(&mut self, label: &str, value: &[u8]) {
        for part in [label.as_bytes(), value] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
    }

    /// A file by path, size and modification time (missing: recorded as missing).
    pub fn file(&mut self, label: &str, path: &Path) {
        let stat = std::fs::metadata(path)
            .map(|m| stamp_text(&m))
            .unwrap_or_else(|_| "missing".into());
        self.field(label, format!("{} {stat}", path.display()).as_bytes());
    }

    /// Environment variables whose names start with one of `prefixes` or equal one of
    /// `names`, sorted.
    pub fn env(&mut self, prefixes: &[&str], names: &[&str]) {
        let mut vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
            .filter(|(k, _)| {
                prefixes.iter().any(|p| k.starts_with(p)) || names.contains(&k.as_str())
            })
            .collect();
        vars.sort();
        for (k, v) in vars {
            self.field(&format!("env {k}"), v.as_bytes());
        }
    }

    /// Every file under `dir` except `.git` and the directories in `skip` (and any
    /// directory holding an OCI layout, which kiln may write there). None when the tree is
    /// too large or cannot be read.
    pub fn tree(&mut self, dir: &Path, skip: &[PathBuf]) -> Option<()> {
        let mut entries = Vec::new();
        walk(dir, dir, skip, &mut entries)?;
        entries.sort();
        self.field("tree", dir.as_os_str().as_encoded_bytes());
        for e in entries {
            self.field("entry", e.as_bytes());
        }
        Some(())
    }

    /// The fingerprint of a command run with these inputs: program, arguments, environment
    /// changes and directory.
    pub fn command(&mut self, cmd: &Cmd) {
        self.field("program", cmd.program().as_os_str().as_encoded_bytes());
        for a in cmd.get_args() {
            self.field("arg", a.as_encoded_bytes());
        }
        for (k, v) in cmd.get_envs() {
            let v = v
                .as_ref()
                .map_or(&b"(removed)"[..], |v| v.as_encoded_bytes());
            self.field(&format!("set {}", k.to_string_lossy()), v);
        }
    }

    /// The fingerprint so far, without finishing it.
    pub fn clone_hex(&self) -> String {
        self.0.clone().finish_hex()
    }

    pub fn finish(self) -> String {
        self.0.finish_hex()
    }
}

fn walk(root: &Path, dir: &Path, skip: &[PathBuf], out: &mut Vec<String>) -> Option<()> {
    if dir.join("oci-layout").exists() || skip.iter().any(|s| s == dir) {
        return Some(());
    }
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        let path = e.path();
        let name = e.file_name();
        if dir == root && name == ".git" {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).ok()?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if meta.is_dir() {
            walk(root, &path, skip, out)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).ok()?;
            // The target's own state counts too (it may lie outside the tree).
            let stat = std::fs::metadata(&path)
                .map(|m| stamp_text(&m))
                .unwrap_or_else(|_| "dangling".into());
            out.push(format!("{rel} -> {} {stat}", target.display()));
        } else {
            out.push(format!("{rel} {} {:o}", stamp_text(&meta), meta.mode()));
        }
        if out.len() > MAX_FILES {
            return None;
        }
    }
    Some(())
}

#[derive(Serialize, Deserialize)]
struct Record {
    key: String,
    /// Each output's file name, size and modification time when the step finished.
    outputs: Vec<(String, u64, i64, i64)>,
}

/// A file's size and modification time (seconds, nanoseconds).
fn stamp(m: &std::fs::Metadata) -> (u64, i64, i64) {
    (m.len(), m.mtime(), m.mtime_nsec())
}

fn stamp_text(m: &std::fs::Metadata) -> String {
    let (size, s, ns) = stamp(m);
    format!("{size} {s} {ns}")
}

fn stat(path: &Path) -> Option<(u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    m.is_file().then(|| stamp(&m))
}

/// Did the step with fingerprint `key` last succeed in `dir`, leaving `outputs` that are
/// still there, untouched?
pub fn is_fresh(dir: &Path, key: &str, outputs: &[String]) -> bool {
    let Ok(bytes) = std::fs::read(dir.join(RECORD)) else {
        return false;
    };
    let Ok(r) = serde_json::from_slice::<Record>(&bytes) else {
        return false;
    };
    r.key == key
        && r.outputs.len() == outputs.len()
        && r.outputs
            .iter()
            .zip(outputs)
            .all(|((name, size, s, ns), want)| {
                name == want && stat(&dir.join(name)) == Some((*size, *s, *ns))
            })
}

/// Forget the record before a step runs, so that a failed or interrupted run is never
/// taken for a success.
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(RECORD));
}

/// Record a success: `key` and the state of `outputs` in `dir`.
pub fn record(dir: &Path, key: &str, outputs: &[String]) -> anyhow::Result<()> {
    let outputs = outputs
        .iter()
        .map(|name| {
            let (size, s, ns) = stat(&dir.join(name))
                .ok_or_else(|| anyhow::anyhow!("{} is missing", dir.join(name).display()))?;
            Ok((name.clone(), size, s, ns))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let r = Record {
        key: key.to_string(),
        outputs,
    };
    crate::fsutil::write_atomic(
        &dir.join(RECORD),
        &serde_json::to_vec(&r)?,
        crate::fsutil::WriteOptions::cached(0o644),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_key(dir: &Path, skip: &[PathBuf]) -> Option<String> {
        let mut f = Fingerprint::new("test");
        f.tree(dir, skip)?;
        Some(f.finish())
    }

    #[test]
    fn the_tree_fingerprint_follows_contents_names_and_modes_but_not_skipped_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("pkg")).unwrap();
        std::fs::write(d.join("main.go"), "package main").unwrap();
        std::fs::write(d.join("pkg/a.go"), "package pkg").unwrap();
        std::fs::create_dir_all(d.join("out")).unwrap();
        std::fs::create_dir_all(d.join(".git")).unwrap();
        let skip = [d.join("out")];
        let k0 = tree_key(d, &skip).unwrap();
        assert_eq!(tree_key(d, &skip).unwrap(), k0, "stable");

        // Outputs, .git and OCI layouts do not count.
        std::fs::write(d.join("out/hello"), "bin").unwrap();
        std::fs::write(d.join(".git/index"), "x").unwrap();
        std::fs::create_dir_all(d.join("image")).unwrap();
        std::fs::write(d.join("image/oci-layout"), "{}").unwrap();
        std::fs::write(d.join("image/index.json"), "{}").unwrap();
        assert_eq!(tree_key(d, &skip).unwrap(), k0);

        // A new file, an edit (same size, new time), a mode change each count.
        std::fs::write(d.join("pkg/asset.txt"), "embedded").unwrap();
        let k1 = tree_key(d, &skip).unwrap();
        assert_ne!(k1, k0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.join("pkg/a.go"), "package pkx").unwrap();
        let k2 = tree_key(d, &skip).unwrap();
        assert_ne!(k2, k1);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("main.go"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        assert_ne!(tree_key(d, &skip).unwrap(), k2);
    }

    #[test]
    fn records_match_only_the_same_key_and_untouched_outputs() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let bins = vec!["app".to_string()];
        assert!(!is_fresh(d, "k", &bins), "no record yet");
        assert!(record(d, "k", &bins).is_err(), "the output must exist");
        std::fs::write(d.join("app"), "v1").unwrap();
        record(d, "k", &bins).unwrap();
        assert!(is_fresh(d, "k", &bins));
        assert!(!is_fresh(d, "other", &bins));
        assert!(!is_fresh(d, "k", &["app".into(), "more".into()]));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.join("app"), "v2").unwrap();
        assert!(!is_fresh(d, "k", &bins), "output replaced");
        record(d, "k", &bins).unwrap();
        forget(d);
        assert!(!is_fresh(d, "k", &bins), "forgotten");
    }

    #[test]
    fn command_fingerprints_differ_by_argument_and_environment() {
        let key = |cmd: Cmd| {
            let mut f = Fingerprint::new("test");
            f.command(&cmd);
            f.finish()
        };
        let base = || Cmd::new("go", "x").arg("build").env("GOARCH", "arm64");
        assert_eq!(key(base()), key(base()));
        assert_ne!(key(base()), key(base().arg("-tags=a")));
        assert_ne!(key(base()), key(base().env("GOARM", "7")));
        assert_ne!(key(base()), key(base().env_remove("GOARM")));
        assert_ne!(
            key(Cmd::new("go", "x").arg("ab")),
            key(Cmd::new("go", "x").arg("a").arg("b"))
        );
    }
}
