//! What the release step asks other programs, kept between builds: each target's `cargo
//! metadata --filter-platform` and the tools' versions. A no-op rebuild with an image spent
//! most of its time there (each `cargo metadata` probes rustc for the host and the target),
//! though nothing it depends on had changed.
//!
//! An answer is reused only when its key matches — kiln itself, the command, the
//! environment cargo and rustup read, and the sha256 of the binaries built (a new toolchain,
//! other features or flags make other binaries) — and every file it was read from (Cargo.lock,
//! the path packages' manifests) still has the content it had. Anything unreadable is a miss.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::builders::fresh::Fingerprint;
use crate::digest::sha256_hex;
use crate::exec::Cmd;
use crate::fsutil::{WriteOptions, write_atomic};

/// Environment variables that can change what cargo, rustc and rustup answer.
pub(super) const TOOL_ENV: &[&str] = &["CARGO", "RUSTUP", "RUSTC", "RUSTFLAGS", "RUSTDOC"];

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The full key ([`Key::full`]): the file holds one answer per question, the latest.
    key: String,
    /// The files the answer was read from, with the sha256 of their content then.
    inputs: Vec<(PathBuf, String)>,
    answer: String,
}

/// A directory of answers by key.
pub(super) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Under the build's target dir when it has one, else in kiln's cache.
    pub(super) fn for_build(target_dir: Option<&Path>) -> Cache {
        Cache {
            dir: match target_dir {
                Some(d) => d.join("kiln").join("release-answers"),
                None => crate::fsutil::cache_dir().join("release-answers"),
            },
        }
    }

    /// The answer kept under `key`, if its input files are unchanged.
    pub(super) fn get(&self, key: &Key) -> Option<String> {
        let bytes = std::fs::read(self.dir.join(format!("{}.json", key.slot))).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        if e.key != key.full {
            return None;
        }
        e.inputs
            .iter()
            .all(|(path, hash)| content_hash(path).as_deref() == Some(hash.as_str()))
            .then_some(e.answer)
    }

    /// Keep `answer` under `key`, with the current content of `inputs`. Best effort: a
    /// cache that cannot be written only means asking again next time.
    pub(super) fn put(&self, key: &Key, inputs: &[PathBuf], answer: &str) {
        let Some(inputs) = inputs
            .iter()
            .map(|p| Some((p.clone(), content_hash(p)?)))
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        let entry = Entry {
            key: key.full.clone(),
            inputs,
            answer: answer.to_string(),
        };
        if let Ok(bytes) = serde_json::to_vec(&entry) {
            let _ = std::fs::create_dir_all(&self.dir).map(|()| {
                write_atomic(
                    &self.dir.join(format!("{}.json", key.slot)),
                    &bytes,
                    WriteOptions::cached(0o644),
                )
            });
        }
    }
}

fn content_hash(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|b| sha256_hex(&b))
}

/// Where an answer is kept and what it must match.
pub(super) struct Key {
    /// The question (kiln and the command): one file each, so the cache does not grow with
    /// every rebuild.
    slot: String,
    /// Everything the answer depends on.
    full: String,
}

/// The key of `cmd`'s answer: kiln, the command, the tool environment, the program file as
/// found on PATH (size and time), and `extra` (the binaries' hashes).
pub(super) fn command_key(cmd: &Cmd, extra: &[&str]) -> Key {
    let mut f = Fingerprint::new("release answer");
    f.command(cmd);
    let slot = f.clone_hex();
    f.env(TOOL_ENV, &["PATH"]);
    if let Ok(p) = which::which(cmd.program()) {
        f.file("program", &p);
    }
    for e in extra {
        f.field("extra", e.as_bytes());
    }
    Key {
        slot,
        full: f.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_reused_only_while_its_inputs_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::for_build(Some(dir.path()));
        let lock = dir.path().join("Cargo.lock");
        std::fs::write(&lock, "version = 4\n").unwrap();
        let key = command_key(&Cmd::new("cargo", "test").arg("metadata"), &["abc"]);
        let other = command_key(&Cmd::new("cargo", "test").arg("metadata"), &["abd"]);
        assert_ne!(
            key.full, other.full,
            "the binaries' hashes are part of the key"
        );
        assert_eq!(key.slot, other.slot, "one file per question");
        assert_eq!(cache.get(&key), None);
        cache.put(&key, std::slice::from_ref(&lock), "{\"answer\":1}");
        assert_eq!(cache.get(&key).as_deref(), Some("{\"answer\":1}"));
        assert_eq!(cache.get(&other), None, "other binaries");
        std::fs::write(&lock, "version = 4\n# changed\n").unwrap();
        assert_eq!(cache.get(&key), None, "Cargo.lock changed");
        std::fs::remove_file(&lock).unwrap();
        assert_eq!(cache.get(&key), None, "Cargo.lock gone");
    }
}
