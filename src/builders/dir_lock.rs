//! One kiln build at a time in a build directory (cargo's target dir, a Go target's output
//! dir, a C target's build dir), from the start of the compiler until the executables are
//! copied out of it.
//!
//! cargo locks its build directory only while it runs. Two kiln builds of one project with
//! different flags (`--auditable` and plain, two feature sets) that share a target dir
//! could otherwise interleave: the second cargo relinks `<triple>/<profile>/<bin>` between
//! the first cargo's end and the first kiln's copy, and the first kiln ships the second
//! one's binary. The lock is an advisory lock (`flock`) on the directory itself, held by
//! every [`Built`](super::Built) that came out of the build; it is released when the last
//! one is dropped (after the pipeline has copied the binary to the output directory).

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use anyhow::Context;

/// The held lock of one target dir. Dropping the last `Arc` releases it.
#[derive(Debug)]
pub struct BuildDirLock {
    dir: PathBuf,
    _file: File,
}

impl BuildDirLock {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The locks this process holds, one slot per directory, so that stages of one build share
/// a lock instead of waiting for each other (an `flock` on a second descriptor of the same
/// directory blocks even within one process). A slot's mutex is held from the check of
/// what this process holds until the lock taken is recorded: a second stage waits for the
/// first's lock to be recorded, then shares it (before, it could miss it, block on its own
/// process's lock and never get it: the first stage's binaries kept it held).
type Slot = Arc<Mutex<Weak<BuildDirLock>>>;
static HELD: Mutex<Vec<(PathBuf, Slot)>> = Mutex::new(Vec::new());

fn slot(dir: &Path) -> Slot {
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, s)) = held.iter().find(|(d, _)| d == dir) {
        return Arc::clone(s);
    }
    let s = Slot::default();
    held.push((dir.to_path_buf(), Arc::clone(&s)));
    s
}

/// Lock `dir` (created if missing) for this build; when another kiln holds it, say so on
/// stderr and wait for it.
pub fn lock(dir: &Path) -> anyhow::Result<Arc<BuildDirLock>> {
    lock_with(dir, |dir| {
        eprintln!(
            "kiln: waiting for another kiln build that uses {} (it is copying its binaries out)",
            dir.display()
        );
    })
}

/// [`lock`], with `waiting` called once before a wait instead of the message.
fn lock_with(dir: &Path, waiting: impl FnOnce(&Path)) -> anyhow::Result<Arc<BuildDirLock>> {
    fs_err::create_dir_all(dir)?;
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let slot = slot(&dir);
    let mut mine = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = mine.upgrade() {
        return Ok(lock);
    }
    let file = File::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        // Not this process's (that one would be in the slot): another kiln's.
        Err(TryLockError::WouldBlock) => {
            waiting(&dir);
            file.lock()
                .with_context(|| format!("locking {}", dir.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", dir.display()));
        }
    }
    let lock = Arc::new(BuildDirLock { dir, _file: file });
    *mine = Arc::downgrade(&lock);
    Ok(lock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_of_one_build_share_the_lock_and_it_is_released_with_the_last() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cargo");
        let a = lock_with(&dir, |_| panic!("the first lock waited")).unwrap();
        let b = lock_with(&dir, |_| panic!("a second stage of the same build waited")).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Another process (here: another open file description) cannot take it meanwhile.
        let other = File::open(&dir).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(a);
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(b);
        other
            .try_lock()
            .expect("released when the last holder is dropped");
    }

    /// Stages of one build asking at the same moment all get the one lock; none waits on
    /// its own process (the first version could: a stage checked what the process held just
    /// before another recorded the lock it had taken, then blocked on it for good).
    #[test]
    fn stages_asking_at_once_share_one_lock() {
        let tmp = tempfile::tempdir().unwrap();
        for round in 0..40 {
            let dir = tmp.path().join(format!("cargo-{round}"));
            let barrier = Arc::new(std::sync::Barrier::new(8));
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..8 {
                let (dir, barrier, tx) = (dir.clone(), Arc::clone(&barrier), tx.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let _ = tx.send(lock_with(&dir, |_| {
                        panic!("a stage waited for its own build")
                    }));
                });
            }
            let got: Vec<Arc<BuildDirLock>> = (0..8)
                .map(|_| {
                    rx.recv_timeout(std::time::Duration::from_secs(20))
                        .expect("a stage is stuck waiting for its own build's lock")
                        .unwrap()
                })
                .collect();
            assert!(got.iter().all(|l| Arc::ptr_eq(l, &got[0])));
        }
    }
}
