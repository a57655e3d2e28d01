//! One kiln build at a time in a cargo target dir, from the start of cargo until the
//! executables are copied out of it.
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

/// The locks this process holds, so that stages of one build share a lock instead of
/// waiting for each other (an `flock` on a second descriptor of the same directory would
/// block even within one process).
static HELD: Mutex<Vec<(PathBuf, Weak<BuildDirLock>)>> = Mutex::new(Vec::new());

fn held(dir: &Path) -> Option<Arc<BuildDirLock>> {
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    held.retain(|(_, w)| w.strong_count() > 0);
    held.iter()
        .find(|(d, _)| d == dir)
        .and_then(|(_, w)| w.upgrade())
}

/// Lock `dir` (created if missing) for this build, waiting for another kiln that holds it;
/// `waiting` is called once before a wait.
pub fn lock(dir: &Path, waiting: impl FnOnce()) -> anyhow::Result<Arc<BuildDirLock>> {
    fs_err::create_dir_all(dir)?;
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Some(lock) = held(&dir) {
        return Ok(lock);
    }
    let file = File::open(&dir).with_context(|| format!("opening {}", dir.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            // Perhaps a stage of this same build took it a moment ago: share that one.
            if let Some(lock) = held(&dir) {
                return Ok(lock);
            }
            waiting();
            file.lock()
                .with_context(|| format!("locking {}", dir.display()))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", dir.display()));
        }
    }
    let lock = Arc::new(BuildDirLock {
        dir: dir.clone(),
        _file: file,
    });
    HELD.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((dir, Arc::downgrade(&lock)));
    Ok(lock)
}

/// What a build prints before it waits for `dir`.
pub fn waiting_message(dir: &Path) -> String {
    format!(
        "kiln: waiting for another kiln build that uses {} (it is copying its binaries out)",
        dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_of_one_build_share_the_lock_and_it_is_released_with_the_last() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cargo");
        let a = lock(&dir, || panic!("the first lock waited")).unwrap();
        let b = lock(&dir, || panic!("a second stage of the same build waited")).unwrap();
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
}
