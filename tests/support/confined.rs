//! kiln confined to a temp dir for the hostile-input tests (issue #9): HOME, TMPDIR, cache
//! and working directory inside it, and snapshots to check afterwards that nothing outside
//! the places a test allows was created, changed or removed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// [`super::kiln`] with its working directory, HOME, TMPDIR and cache inside `dir`.
pub fn kiln_in(dir: &Path) -> Command {
    let mut c = super::kiln();
    for sub in ["home", "tmp", "cache"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    c.current_dir(dir)
        .env("HOME", dir.join("home"))
        .env("TMPDIR", dir.join("tmp"))
        .env("KILN_CACHE_DIR", dir.join("cache"));
    c
}

/// What [`snapshot`] records per path: mode, size, inode, mtime seconds and nanoseconds.
pub type Snapshot = BTreeMap<PathBuf, (u32, u64, u64, i64, i64)>;

/// Every path below `root` (not following symlinks) with its type, size, mode, inode and
/// modification time: compare two snapshots to see what changed.
pub fn snapshot(root: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        // A directory's own size and times change with its entries, which are compared
        // one by one; its type, mode and inode are what must stay.
        let (len, t, ns) = if m.is_dir() {
            (0, 0, 0)
        } else {
            (m.len(), m.mtime(), m.mtime_nsec())
        };
        out.insert(p.clone(), (m.mode(), len, m.ino(), t, ns));
        if m.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}

/// Assert two snapshots are equal, except below the paths in `allowed`.
pub fn assert_unchanged(before: &Snapshot, after: &Snapshot, allowed: &[&Path]) {
    let ok = |p: &Path| allowed.iter().any(|a| p.starts_with(a));
    for (p, v) in before {
        if ok(p) {
            continue;
        }
        match after.get(p) {
            None => panic!("{} was removed", p.display()),
            Some(w) if w != v => panic!("{} changed: {v:?} -> {w:?}", p.display()),
            _ => {}
        }
    }
    for p in after.keys() {
        if !ok(p) && !before.contains_key(p) {
            panic!("{} was created", p.display());
        }
    }
}
