//! File-system leaves every room uses: atomic writes (temporary file + rename, so an
//! interrupted run never leaves a half-written file that looks whole), reading a file
//! either into memory or through a mapping, and kiln's cache directory.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// How [`write_atomic`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Permission bits of the written file (tempfile creates 0600 files otherwise).
    pub mode: u32,
    /// `fsync` the data before the rename, so a crash cannot leave the new name pointing at
    /// an empty file. Images and archives want this; build outputs that are cheap to make
    /// again do not pay for it.
    pub fsync: bool,
    /// Leave the file alone (mtime included) when it already holds exactly these bytes, so
    /// tools that watch mtimes do not rebuild.
    pub skip_identical: bool,
}

impl WriteOptions {
    /// A shared, durable file: 0644, synced, always written. What image layouts and
    /// archives use.
    pub const DURABLE: WriteOptions = WriteOptions {
        mode: 0o644,
        fsync: true,
        skip_identical: false,
    };

    /// A build product or cache record with mode `mode`: not synced, untouched when its
    /// content is already there.
    pub const fn cached(mode: u32) -> WriteOptions {
        WriteOptions {
            mode,
            fsync: false,
            skip_identical: true,
        }
    }
}

/// Prefix of kiln's temporary files (a reader may remove leftovers of killed runs).
pub const TEMP_PREFIX: &str = ".kiln-tmp-";

/// Write `data` to `dest` through a temporary file in the same directory and a rename, so a
/// reader never sees half a file.
pub fn write_atomic(dest: &Path, data: &[u8], opts: WriteOptions) -> anyhow::Result<()> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    write_atomic_in(dir, dest, data, opts)
}

/// [`write_atomic`] with the temporary file in `dir` (on the same file system as `dest`):
/// for directories where readers expect only final names, such as a layout's blobs.
pub fn write_atomic_in(
    dir: &Path,
    dest: &Path,
    data: &[u8],
    opts: WriteOptions,
) -> anyhow::Result<()> {
    if opts.skip_identical && holds(dest, data) {
        return Ok(());
    }
    let tmp = write_temp_in(dir, data, opts)?;
    tmp.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", dest.display()))?;
    Ok(())
}

/// `data` in a new temporary file in `dir` (mode and sync as `opts` say), removed when the
/// returned path is dropped unless it is persisted (renamed) first.
pub fn write_temp_in(
    dir: &Path,
    data: &[u8],
    opts: WriteOptions,
) -> anyhow::Result<tempfile::TempPath> {
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(data)
        .and_then(|_| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(opts.mode))
        })
        .and_then(|_| {
            if opts.fsync {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    Ok(tmp.into_temp_path())
}

/// Whether the file at `path` holds exactly `data` (its size first; a large one mapped, not
/// copied).
fn holds(path: &Path, data: &[u8]) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    match file.metadata() {
        Ok(m) if m.is_file() && m.len() == data.len() as u64 => {
            read_or_map(&file, m.len(), true).is_ok_and(|b| *b == *data)
        }
        _ => false,
    }
}

/// Below this size a plain read is cheaper than setting up and tearing down a mapping.
pub const MMAP_THRESHOLD: u64 = 256 * 1024;

/// A regular file's bytes: read when small, memory-mapped when large.
pub enum FileBytes {
    Read(Vec<u8>),
    Map(memmap2::Mmap),
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Map(m) => m,
        }
    }
}

/// The bytes of `file`, a regular file `len` bytes long: read (at most `len` bytes, so a
/// file that grows meanwhile is cut where it was) up to [`MMAP_THRESHOLD`], mapped above.
/// `populate` pre-faults the whole mapping, for callers that read every byte.
pub fn read_or_map(file: &File, len: u64, populate: bool) -> std::io::Result<FileBytes> {
    if len <= MMAP_THRESHOLD {
        let mut buf = Vec::with_capacity(len as usize);
        let mut reader = file;
        reader.seek(std::io::SeekFrom::Start(0))?;
        reader.take(len).read_to_end(&mut buf)?;
        return Ok(FileBytes::Read(buf));
    }
    let mut options = memmap2::MmapOptions::new();
    if populate {
        options.populate();
    }
    // SAFETY: the mapping is read-only and private. If another process truncates the file
    // while it is read, reads past the new end raise SIGBUS; that is the same trade-off
    // ripgrep makes, and kiln maps only regular files it was asked to read or pack.
    unsafe { options.map(file) }.map(FileBytes::Map)
}

/// The size of a memory page.
pub fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    // SAFETY: sysconf reads a constant of the system.
    *PAGE.get_or_init(|| {
        usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
    })
}

/// Start reading `range` of `file` into the page cache and return at once
/// (`POSIX_FADV_WILLNEED`): a reader that asks for all the ranges it will need before it
/// touches any keeps many requests in flight. Only a hint: errors are ignored.
pub fn prefetch(file: &File, range: std::ops::Range<u64>) {
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (
        libc::off_t::try_from(range.start),
        libc::off_t::try_from(range.end.saturating_sub(range.start)),
    ) else {
        return;
    };
    // The kernel reads at most one read-ahead window (`read_ahead_kb`) per call: ask in
    // pieces no larger than the smallest common window.
    const PIECE: libc::off_t = 128 * 1024;
    let end = off.saturating_add(len);
    let mut at = off;
    while at < end {
        let n = PIECE.min(end - at);
        // SAFETY: plain system call on an open descriptor; it reads nothing into our memory.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), at, n, libc::POSIX_FADV_WILLNEED) };
        at += n;
    }
}

/// Map a whole regular file read-only for scattered reads: a page fault reads just its page
/// (MADV_RANDOM), not the read-around window (as large as the disk's `read_ahead_kb`, 8 MiB
/// on some virtual disks) a fault would otherwise pull in. For readers that [`prefetch`]
/// what they need.
pub fn map_random(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: as in `read_or_map`.
    let map = unsafe { memmap2::MmapOptions::new().map(file) }?;
    // Only advice: a kernel that refuses it still reads correctly.
    let _ = map.advise(memmap2::Advice::Random);
    Ok(map)
}

/// kiln's cache: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("kiln");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache").join("kiln")
}

/// Every file under `dir` (path relative to `dir`, bytes): for tests that check two runs
/// left a tree byte for byte the same (unit tests and the integration tests share it).
#[doc(hidden)]
pub fn tree_bytes(dir: &Path) -> std::io::Result<std::collections::BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
                out.insert(rel, std::fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_writes_set_the_mode_and_skip_identical_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        write_atomic(&f, b"one", WriteOptions::cached(0o755)).unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        // Same content: the file is not replaced (same inode).
        write_atomic(&f, b"one", WriteOptions::cached(0o755)).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&f).unwrap()),
            ino
        );
        write_atomic(&f, b"two", WriteOptions::DURABLE).unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn small_files_are_read_large_ones_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"hello").unwrap();
        let b = read_or_map(&File::open(&small).unwrap(), 5, false).unwrap();
        assert!(matches!(b, FileBytes::Read(_)));
        assert_eq!(&*b, b"hello");
        let large = dir.path().join("large");
        let data = vec![7u8; MMAP_THRESHOLD as usize + 1];
        std::fs::write(&large, &data).unwrap();
        let b = read_or_map(&File::open(&large).unwrap(), data.len() as u64, false).unwrap();
        assert!(matches!(b, FileBytes::Map(_)));
        assert_eq!(&*b, &data[..]);
    }
}
