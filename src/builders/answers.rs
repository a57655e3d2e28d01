//! What kiln asks other programs, kept between builds: the Rust sysroot and the project's
//! `cargo metadata --no-deps` before cargo runs, each target's `cargo metadata
//! --filter-platform` and the tools' versions in the release step. A no-op rebuild with an
//! image spent most of its time starting those programs (each through a rustup proxy),
//! though nothing they depend on had changed.
//!
//! An answer is reused only when its key matches — kiln itself, the command, the
//! environment cargo and rustup read, the program found on PATH and whatever else the
//! caller adds — and every file or directory it was read from is still as it was: a file's
//! content ([`Watch::Content`], absent counts too), whether a path exists
//! ([`Watch::Presence`]), a directory's entries ([`Watch::Listing`]). Anything unreadable is
//! a miss. An answer whose inputs changed while it was being asked (modified less than
//! [`RACY`] before the question) is not kept.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::builders::fresh::Fingerprint;
use crate::digest::{Hasher, sha256_hex};
use crate::exec::Cmd;
use crate::fsutil::{WriteOptions, write_atomic};

/// Environment variables that can change what cargo, rustc and rustup answer.
pub const TOOL_ENV: &[&str] = &["CARGO", "RUSTUP", "RUSTC", "RUSTFLAGS", "RUSTDOC"];

/// An input modified this close to (or after) the moment its question was asked may have
/// changed after the program read it: the answer is not kept (as git treats a "racily
/// clean" file). Generous next to file system timestamp granularity.
pub const RACY: Duration = Duration::from_secs(1);

/// What of an input path an answer depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Watch {
    /// The file's bytes (or that it is absent).
    Content,
    /// Whether the path exists, and as a file or a directory.
    Presence,
    /// The names and kinds of a directory's entries (or that it is absent).
    Listing,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The full key ([`Key::full`]): the file holds one answer per question, the latest.
    key: String,
    /// The paths the answer was read from, with their state then.
    inputs: Vec<(PathBuf, Watch, String)>,
    answer: String,
}

/// A directory of answers by key.
pub struct Answers {
    dir: PathBuf,
}

impl Answers {
    pub fn in_dir(dir: PathBuf) -> Answers {
        Answers { dir }
    }

    /// `<target dir>/kiln/<name>` when the build has a target dir, else `<kiln's
    /// cache>/<name>`.
    pub fn for_build(target_dir: Option<&Path>, name: &str) -> Answers {
        Answers {
            dir: match target_dir {
                Some(d) => d.join("kiln").join(name),
                None => crate::fsutil::cache_dir().join(name),
            },
        }
    }

    /// The answer kept under `key`, if its inputs are unchanged.
    pub fn get(&self, key: &Key) -> Option<String> {
        let bytes = std::fs::read(self.dir.join(format!("{}.json", key.slot))).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        if e.key != key.full {
            return None;
        }
        e.inputs
            .iter()
            .all(|(path, watch, was)| state(path, *watch).as_deref() == Some(was.as_str()))
            .then_some(e.answer)
    }

    /// Keep `answer` under `key`, with the current state of `inputs`; `asked`: when the
    /// program that gave it started. Best effort: a cache that cannot be written only means
    /// asking again next time.
    pub fn put(&self, key: &Key, inputs: &[(PathBuf, Watch)], asked: SystemTime, answer: &str) {
        let racy_after = asked.checked_sub(RACY).unwrap_or(SystemTime::UNIX_EPOCH);
        let racy = inputs.iter().any(|(p, _)| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= racy_after)
        });
        if racy {
            return;
        }
        let Some(inputs) = inputs
            .iter()
            .map(|(p, w)| Some((p.clone(), *w, state(p, *w)?)))
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

fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// The state of `path` as `watch` sees it; None when it cannot be read.
fn state(path: &Path, watch: Watch) -> Option<String> {
    match watch {
        Watch::Content => match std::fs::read(path) {
            Ok(b) => Some(sha256_hex(&b)),
            Err(e) if absent(&e) => Some("absent".into()),
            Err(_) => None,
        },
        Watch::Presence => match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Some("dir".into()),
            Ok(_) => Some("file".into()),
            Err(e) if absent(&e) => Some("absent".into()),
            Err(_) => None,
        },
        Watch::Listing => match std::fs::read_dir(path) {
            Ok(rd) => {
                let mut names = Vec::new();
                for e in rd {
                    let e = e.ok()?;
                    let dir = e.file_type().ok()?.is_dir();
                    names.push((e.file_name(), dir));
                }
                names.sort();
                let mut h = Hasher::new();
                for (name, dir) in names {
                    h.update((name.len() as u64).to_le_bytes());
                    h.update(name.as_encoded_bytes());
                    h.update([u8::from(dir)]);
                }
                Some(h.finish_hex())
            }
            Err(e) if absent(&e) => Some("absent".into()),
            Err(_) => None,
        },
    }
}

/// Where an answer is kept and what it must match.
pub struct Key {
    /// The question (kiln and the command): one file each, so the cache does not grow with
    /// every rebuild.
    slot: String,
    /// Everything the answer depends on.
    full: String,
}

/// The key of `cmd`'s answer: kiln, the command, the tool environment, the program file as
/// found on PATH (size and time), and `extra` (e.g. the binaries' hashes).
pub fn command_key(cmd: &Cmd, extra: &[&str]) -> Key {
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

/// The key of a question rustup's choice of toolchain can change: `cmd` run from its
/// directory (kiln's current one unless it sets one), every variable cargo, rustc and rustup read (`CARGO*`, `RUSTUP*`,
/// `RUSTC*`, `RUSTFLAGS`, `PATH`, `HOME`), the program found on PATH, and `files` (each by
/// size and time, e.g. the toolchain's own binaries); `about`: the project directories
/// the inputs were chosen for. Pair it with [`toolchain_inputs`].
pub fn toolchain_key(kind: &str, cmd: &Cmd, about: &[&Path], files: &[&Path]) -> Key {
    let mut f = Fingerprint::new(kind);
    f.command(cmd);
    let cwd = run_dir(cmd);
    f.field("cwd", cwd.as_os_str().as_encoded_bytes());
    for d in about {
        f.field("about", d.as_os_str().as_encoded_bytes());
    }
    let slot = f.clone_hex();
    f.env(TOOL_ENV, &["PATH", "HOME"]);
    if let Ok(p) = which::which(cmd.program()) {
        f.file("program", &p);
    }
    for p in files {
        f.file("file", p);
    }
    Key {
        slot,
        full: f.finish(),
    }
}

/// `$RUSTUP_HOME`, else `~/.rustup`.
fn rustup_home() -> Option<PathBuf> {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(std::env::var_os("HOME")?).join(".rustup")))
}

/// `$CARGO_HOME`, else `~/.cargo`.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(std::env::var_os("HOME")?).join(".cargo")))
}

/// The directory `cmd` runs in: its own, else kiln's current one.
fn run_dir(cmd: &Cmd) -> PathBuf {
    cmd.get_dir()
        .map(Path::to_path_buf)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default()
}

/// The files that choose rustup's toolchain for `cmd` (run in its directory) about a
/// project in `dirs`: `rust-toolchain(.toml)` in each of their ancestors and in the run
/// directory's, and rustup's `settings.toml` (default toolchain, directory overrides).
pub fn toolchain_inputs(cmd: &Cmd, dirs: &[&Path]) -> Vec<(PathBuf, Watch)> {
    let mut out: Vec<(PathBuf, Watch)> = Vec::new();
    let mut push = |p: PathBuf, w: Watch| {
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, w));
        }
    };
    let cwd = run_dir(cmd);
    for dir in dirs.iter().copied().chain([cwd.as_path()]) {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        for a in dir.ancestors() {
            push(a.join("rust-toolchain"), Watch::Content);
            push(a.join("rust-toolchain.toml"), Watch::Content);
        }
    }
    if let Some(home) = rustup_home() {
        push(home.join("settings.toml"), Watch::Content);
    }
    out
}

/// Cargo's configuration files for `cmd` (run in its directory) about a project in
/// `dirs`: `.cargo/config(.toml)` in every ancestor and in `$CARGO_HOME`.
pub fn cargo_config_inputs(cmd: &Cmd, dirs: &[&Path]) -> Vec<(PathBuf, Watch)> {
    let mut out: Vec<(PathBuf, Watch)> = Vec::new();
    let cwd = run_dir(cmd);
    let mut roots: Vec<PathBuf> = Vec::new();
    for dir in dirs.iter().copied().chain([cwd.as_path()]) {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        roots.extend(dir.ancestors().map(|a| a.join(".cargo")));
    }
    roots.extend(cargo_home());
    for r in roots {
        for name in ["config", "config.toml"] {
            let p = r.join(name);
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, Watch::Content));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files written by a test are "racy" for a second: age them.
    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(path)
            .or_else(|_| std::fs::File::open(path))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn an_answer_is_reused_only_while_its_inputs_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Answers::for_build(Some(dir.path()), "answers");
        let lock = dir.path().join("Cargo.lock");
        std::fs::write(&lock, "version = 4\n").unwrap();
        age(&lock);
        let key = command_key(&Cmd::new("cargo", "test").arg("metadata"), &["abc"]);
        let other = command_key(&Cmd::new("cargo", "test").arg("metadata"), &["abd"]);
        assert_ne!(
            key.full, other.full,
            "the binaries' hashes are part of the key"
        );
        assert_eq!(key.slot, other.slot, "one file per question");
        assert_eq!(cache.get(&key), None);
        let inputs = [(lock.clone(), Watch::Content)];
        cache.put(&key, &inputs, SystemTime::now(), "{\"answer\":1}");
        assert_eq!(cache.get(&key).as_deref(), Some("{\"answer\":1}"));
        assert_eq!(cache.get(&other), None, "other binaries");
        std::fs::write(&lock, "version = 4\n# changed\n").unwrap();
        assert_eq!(cache.get(&key), None, "Cargo.lock changed");
        std::fs::remove_file(&lock).unwrap();
        assert_eq!(cache.get(&key), None, "Cargo.lock gone");
    }

    #[test]
    fn presence_and_listing_inputs_invalidate_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Answers::in_dir(dir.path().join("answers"));
        let bin = dir.path().join("src/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let main = dir.path().join("src/main.rs");
        let toolchain = dir.path().join("rust-toolchain.toml");
        let inputs = [
            (bin.clone(), Watch::Listing),
            (main.clone(), Watch::Presence),
            (toolchain.clone(), Watch::Content),
        ];
        let key = command_key(&Cmd::new("cargo", "test").arg("x"), &[]);
        let asked = SystemTime::now();
        // Just made: racy, not kept.
        cache.put(&key, &inputs, asked, "a");
        assert_eq!(cache.get(&key), None, "an input changed within RACY");
        age(&bin);
        age(&dir.path().join("src"));
        cache.put(&key, &inputs, asked, "a");
        assert_eq!(cache.get(&key).as_deref(), Some("a"));
        std::fs::write(bin.join("extra.rs"), "fn main() {}").unwrap();
        assert_eq!(cache.get(&key), None, "a new file in src/bin");
        std::fs::remove_file(bin.join("extra.rs")).unwrap();
        assert_eq!(cache.get(&key).as_deref(), Some("a"), "as it was");
        std::fs::write(&main, "fn main() {}").unwrap();
        assert_eq!(cache.get(&key), None, "src/main.rs appeared");
        std::fs::remove_file(&main).unwrap();
        std::fs::write(&toolchain, "[toolchain]\nchannel = \"nightly\"\n").unwrap();
        assert_eq!(cache.get(&key), None, "a rust-toolchain.toml appeared");
    }
}
