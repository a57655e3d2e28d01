//! Getting a file's bytes cheaply: small files are read, large ELF files are memory-mapped
//! so that only the pages the parser touches are paged in, and non-ELF files are rejected
//! after reading four bytes. This is what keeps `kiln inspect /usr/lib` fast and its memory
//! bounded no matter how large the libraries are.

use std::io::Read;
use std::path::Path;

use super::ElfError;
use crate::fsutil::{MMAP_THRESHOLD, read_or_map};

/// Call `f` with the file's bytes. Files that do not start with the ELF magic are passed as
/// just their first bytes (enough for `inspect_bytes` to say "not an ELF file").
pub fn with_file_bytes<T>(path: &Path, f: impl FnOnce(&[u8]) -> T) -> Result<T, ElfError> {
    // Look before opening a path the user named: opening some devices has effects (a
    // watchdog starts counting), and opening a FIFO could block.
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    with_walked_file_bytes(path, f)
}

/// [`with_file_bytes`] for a file a directory walk listed as a regular file: opened
/// without a look first (one `statx` less per file; `kiln inspect /usr/lib` is mostly
/// these calls), without blocking, and checked again through the open file, so a file
/// swapped for a FIFO or a directory since the walk is still refused.
pub fn with_walked_file_bytes<T>(path: &Path, f: impl FnOnce(&[u8]) -> T) -> Result<T, ElfError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    read_open(file, meta.len(), f)
}

/// Why what is not a regular file is not read.
fn not_regular(meta: &std::fs::Metadata) -> ElfError {
    if meta.is_dir() {
        ElfError::Io(
            "is a directory (kiln inspect walks directories given on the command line, not ones reached through symlinks)".into(),
        )
    } else {
        // FIFOs and devices: reading could block forever or never end.
        ElfError::Io(
            "not a regular file (device, FIFO or socket); pass regular files or directories".into(),
        )
    }
}

fn read_open<T>(
    mut file: std::fs::File,
    len: u64,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, ElfError> {
    if len <= MMAP_THRESHOLD {
        // Read up to the threshold, not up to `len`: /proc and sysfs files say 0 bytes and
        // still have content (or fail with EIO, which the user must see). The threshold
        // bounds the allocation and guards against a file that grows while we read it.
        let mut buf = Vec::with_capacity(len as usize);
        file.by_ref()
            .take(MMAP_THRESHOLD)
            .read_to_end(&mut buf)
            .map_err(io_error)?;
        return Ok(f(&buf));
    }
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || !super::is_elf(&magic) {
        return Ok(f(&magic));
    }
    let bytes = read_or_map(&file, len, false).map_err(io_error)?;
    Ok(f(&bytes))
}

/// A read error as an [`ElfError`].
pub fn io_error(e: std::io::Error) -> ElfError {
    ElfError::Io(io_message(&e))
}

/// A read error in words a user can act on.
pub fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let advice = match e.kind() {
        ErrorKind::PermissionDenied => " (run as a user that can read it, or fix its mode)",
        ErrorKind::NotFound => " (check the path; a dangling symlink looks like this too)",
        // ELOOP: `ErrorKind::FilesystemLoop` is not stable yet.
        _ if e.raw_os_error() == Some(40) => " (a symlink loop: fix or remove the link)",
        _ => {
            " (the file system would not hand over its bytes: leave it out of the inputs, or check the disk)"
        }
    };
    format!("{e}{advice}")
}
