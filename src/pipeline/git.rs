//! The source's git state — the commit (image annotations and provenance), `origin` and
//! whether the tree is dirty (provenance) — asked in the background, so that the git
//! processes run while cargo works instead of one after another once it is done.
//!
//! The commit and `origin` do not change while kiln builds; the tree's state can (cargo
//! writes Cargo.lock, build scripts and kiln write outputs), so `git status` starts only
//! when the last file kiln writes before today's question was written ([`GitProbe::start_status`]):
//! the answers are the ones the questions asked in series gave.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::attest::provenance::GitSource;
use crate::exec::Cmd;

/// One git question, running on its own thread until its answer is first wanted.
struct Pending {
    running: Mutex<Option<JoinHandle<Option<String>>>>,
    answer: OnceLock<Option<String>>,
}

impl Pending {
    /// Ask `cmd` now (nothing to ask: no answer).
    fn start(cmd: Option<Cmd>) -> Pending {
        Pending {
            running: Mutex::new(cmd.map(|c| std::thread::spawn(move || c.read().ok()))),
            answer: OnceLock::new(),
        }
    }

    fn get(&self) -> Option<&str> {
        self.answer
            .get_or_init(|| {
                let running = self
                    .running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                running.and_then(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            })
            .as_deref()
    }
}

/// What a build wants to know about its source's git state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// The commit, for the image's `org.opencontainers.image.revision`.
    pub revision: bool,
    /// Commit, `origin` and dirtiness, for provenance.
    pub source: bool,
}

/// What a build of `cfg` writing `outputs` wants to know: the commit when it writes an
/// image, everything when it writes provenance.
pub fn wanted(cfg: &crate::config::BuildConfig, outputs: &[crate::oci::OutputSpec]) -> Wanted {
    Wanted {
        revision: !outputs.is_empty(),
        source: cfg.release.provenance,
    }
}

/// The git questions about one directory, asked in the background.
pub struct GitProbe {
    dir: PathBuf,
    /// `git` is on PATH and the build wants to know anything.
    asking: bool,
    wanted: Wanted,
    commit: Pending,
    origin: Pending,
    status: OnceLock<Pending>,
}

impl GitProbe {
    /// Start asking what `wanted` needs about `dir` (commit and `origin`; the tree's state
    /// waits for [`start_status`](Self::start_status)).
    pub fn start(dir: &Path, wanted: Wanted) -> GitProbe {
        let asking = (wanted.revision || wanted.source) && which::which("git").is_ok();
        let ask = |yes: bool, args: &[&str]| (asking && yes).then(|| git(dir, args));
        GitProbe {
            dir: dir.to_path_buf(),
            asking,
            wanted,
            commit: Pending::start(ask(true, &["rev-parse", "HEAD"])),
            origin: Pending::start(ask(wanted.source, &["remote", "get-url", "origin"])),
            status: OnceLock::new(),
        }
    }

    /// Start `git status` (for provenance): call once nothing the build writes into the
    /// tree before the release files is left to write.
    pub fn start_status(&self) {
        self.status();
    }

    fn status(&self) -> &Pending {
        self.status.get_or_init(|| {
            Pending::start(
                (self.asking && self.wanted.source)
                    .then(|| git(&self.dir, &["status", "--porcelain"])),
            )
        })
    }

    /// The commit checked out (40 hex digits), when the directory is in a git checkout.
    pub fn revision(&self) -> Option<String> {
        self.commit
            .get()
            .filter(|c| c.len() == 40)
            .map(str::to_string)
    }

    /// Where the source comes from, for provenance: `origin` (else the directory), the
    /// commit and whether anything is uncommitted.
    pub fn source(&self) -> Option<GitSource> {
        let commit = self.revision()?;
        Some(GitSource {
            repository: self
                .origin
                .get()
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .unwrap_or_else(|| format!("file://{}", self.dir.display())),
            commit,
            dirty: self.status().get().is_some_and(|s| !s.trim().is_empty()),
        })
    }
}

fn git(dir: &Path, args: &[&str]) -> Cmd {
    Cmd::new("git", "read the source's git state")
        .arg("-C")
        .arg(dir)
        .args(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn the_status_is_the_trees_when_it_is_started_not_when_the_probe_is() {
        let d = tempfile::tempdir().unwrap();
        run(d.path(), &["init", "-q"]);
        std::fs::write(d.path().join("a"), "a").unwrap();
        run(d.path(), &["add", "a"]);
        run(d.path(), &["commit", "-q", "-m", "a"]);
        let all = Wanted {
            revision: true,
            source: true,
        };
        let probe = GitProbe::start(d.path(), all);
        // Written by the build after the probe started, before the status is asked.
        std::fs::write(d.path().join("Cargo.lock"), "new").unwrap();
        probe.start_status();
        let s = probe.source().expect("a git checkout");
        assert_eq!(s.commit.len(), 40);
        assert_eq!(probe.revision().as_deref(), Some(s.commit.as_str()));
        assert_eq!(s.repository, format!("file://{}", d.path().display()));
        assert!(s.dirty, "the file written before start_status counts");

        std::fs::remove_file(d.path().join("Cargo.lock")).unwrap();
        run(
            d.path(),
            &["remote", "add", "origin", "https://example.com/x.git"],
        );
        let probe = GitProbe::start(d.path(), all);
        let s = probe.source().unwrap();
        assert!(!s.dirty);
        assert_eq!(s.repository, "https://example.com/x.git");

        let only_revision = GitProbe::start(
            d.path(),
            Wanted {
                revision: true,
                source: false,
            },
        );
        assert_eq!(only_revision.revision().as_deref(), Some(s.commit.as_str()));
        assert_eq!(only_revision.origin.get(), None, "origin not asked");
    }

    #[test]
    fn outside_a_checkout_there_is_no_revision() {
        let d = tempfile::tempdir().unwrap();
        let probe = GitProbe::start(
            d.path(),
            Wanted {
                revision: true,
                source: true,
            },
        );
        // A temp dir is not inside a checkout unless TMPDIR is in one.
        if std::process::Command::new("git")
            .arg("-C")
            .arg(d.path())
            .args(["rev-parse", "HEAD"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return;
        }
        assert_eq!(probe.revision(), None);
        assert!(probe.source().is_none());
    }
}
