//! Getting a file's bytes cheaply: small files are read whole; a large ELF file's headers
//! are read first, every range the parser will read is asked of the disk at once (see
//! `plan`), and the parser then reads through a mapping; non-ELF files are rejected after
//! their first page. This is what keeps `kiln inspect /usr/lib` fast with a cold page cache
//! (a few requests per file in flight together, not one page fault after another, nor the
//! megabytes of read-around a fault pulls in) and its memory bounded however large the
//! libraries are.

use std::io::Read;
use std::path::Path;

use super::ElfError;
use crate::fsutil;

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
    let (file, len) = open_regular(path)?;
    read_open(file, len, f)
}

/// Open `path` without blocking (a FIFO) and check through the open file that it is a
/// regular file; its length.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64), ElfError> {
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
    Ok((file, meta.len()))
}

/// [`with_file_bytes`] for a caller that reads every page of the file next anyway: small
/// files read, large ones mapped as they are (no read plan, no prefetch: on a warm page
/// cache the hints cost more than the parser's few faults).
pub fn with_mapped_file_bytes<T>(path: &Path, f: impl FnOnce(&[u8]) -> T) -> Result<T, ElfError> {
    // A path the user named: looked at before it is opened, as in `with_file_bytes`.
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    let (file, len) = open_regular(path)?;
    let bytes = fsutil::read_or_map(&file, len, false).map_err(io_error)?;
    Ok(f(&bytes))
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

/// Files up to this size are read whole, in one request. Above it, an ELF file is read by
/// plan (see `plan`): its first page and section headers, then what the parser uses.
/// Measured on /usr/bin + /usr/lib (`cargo xtask bench inspect`, docs/build-speed.md):
/// the 301 ELF files of 64-256 KiB are 37 MiB whole and 5 MiB by plan; below 64 KiB the
/// extra requests cost more than the bytes they save.
const READ_WHOLE: u64 = 64 * 1024;

fn read_open<T>(
    mut file: std::fs::File,
    len: u64,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, ElfError> {
    if len <= READ_WHOLE {
        // Read up to the threshold, not up to `len`: /proc and sysfs files say 0 bytes and
        // still have content (or fail with EIO, which the user must see). The threshold
        // bounds the allocation and guards against a file that grows while we read it.
        let mut buf = Vec::with_capacity(len as usize);
        file.by_ref()
            .take(READ_WHOLE)
            .read_to_end(&mut buf)
            .map_err(io_error)?;
        return Ok(f(&buf));
    }
    // The first page holds the ELF header and usually the program headers.
    let mut head = vec![0u8; HEAD];
    let n = read_at_most(&file, &mut head, 0).map_err(io_error)?;
    head.truncate(n);
    if !super::is_elf(&head) {
        return Ok(f(&head[..n.min(4)]));
    }
    // Ask for every range the parser will read before it reads any (see `plan`), then let
    // it read them through a mapping: what the plan missed still reads right, one page at a
    // time (MADV_RANDOM) instead of the 8 MiB read-around windows a fault would pull in.
    ask_plan(&file, len, &head, &mut |r| fsutil::prefetch(&file, r));
    let bytes = fsutil::map_random(&file).map_err(io_error)?;
    Ok(f(&bytes))
}

/// The byte ranges of the file at `path` that [`with_walked_file_bytes`] asks the disk for
/// (sorted, merged): the whole of a small file; a large file's first page, then for an ELF
/// file every range its plan asks for (the headers read while planning lie inside them).
/// For `cargo xtask bench inspect`, which replays them cold to measure what the disk alone
/// takes to deliver kiln's bytes.
pub fn cold_read_ranges(path: &Path) -> std::io::Result<Vec<std::ops::Range<u64>>> {
    let (file, len) = open_regular(path).map_err(|e| std::io::Error::other(e.to_string()))?;
    if len <= READ_WHOLE {
        return Ok(std::iter::once(0..len).collect());
    }
    let mut head = vec![0u8; HEAD];
    let n = read_at_most(&file, &mut head, 0)?;
    let mut out: Vec<std::ops::Range<u64>> = std::iter::once(0..n as u64).collect();
    if super::is_elf(&head[..n]) {
        ask_plan(&file, len, &head[..n], &mut |r| out.push(r));
    }
    Ok(super::plan::merge(out, 0))
}

/// Tell `ask` of every range of a large ELF file the parser will read, as early as each is
/// known (see `plan`); `head` is the file's first page. The headers the plan itself needs
/// are read with `pread`.
fn ask_plan(
    file: &std::fs::File,
    len: u64,
    head: &[u8],
    ask: &mut dyn FnMut(std::ops::Range<u64>),
) {
    let cache = object::read::ReadCache::new(Preader {
        file,
        len,
        head,
        pos: 0,
    });
    // What a hostile file can make us ask for is bounded (a sparse file can claim
    // terabytes of symbol table); past the budget the parser's faults read what it uses.
    let mut budget = PREFETCH_BUDGET;
    let mut within_budget = |r: std::ops::Range<u64>| {
        let r = r.start..r.end.min(r.start.saturating_add(budget));
        budget -= r.end.saturating_sub(r.start);
        ask(r);
    };
    for r in super::plan::ranges(&cache, len, &mut within_budget) {
        within_budget(r);
    }
}

/// Most bytes of one file asked for ahead of the parser (the largest plans on a desktop
/// system's /usr are under 20 MiB).
const PREFETCH_BUDGET: u64 = 256 << 20;

/// How much of a large file is read before planning: the ELF header and, in practice, the
/// program headers.
const HEAD: usize = 4096;

/// Fill `buf` from `off` as far as the file goes; the count read.
fn read_at_most(file: &std::fs::File, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The file through `pread` for object's `ReadCache`: what the first page holds comes from
/// memory, the rest (section headers, names, the dynamic section) is read on demand.
struct Preader<'a> {
    file: &'a std::fs::File,
    len: u64,
    head: &'a [u8],
    pos: u64,
}

impl object::read::ReadCacheOps for Preader<'_> {
    fn len(&mut self) -> Result<u64, ()> {
        Ok(self.len)
    }

    fn seek(&mut self, pos: u64) -> Result<u64, ()> {
        self.pos = pos;
        Ok(pos)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ()> {
        let in_head = usize::try_from(self.pos)
            .ok()
            .and_then(|p| self.head.get(p..p.checked_add(buf.len())?));
        let n = match in_head {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                buf.len()
            }
            None => read_at_most(self.file, buf, self.pos).map_err(|_| ())?,
        };
        self.pos += n as u64;
        Ok(n)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ()> {
        match self.read(buf)? {
            n if n == buf.len() => Ok(()),
            _ => Err(()),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file above [`READ_WHOLE`] is read by plan (first page, section headers, the
    /// planned ranges through a mapping) and reports what its bytes report read whole:
    /// every committed fixture, padded past the threshold as a 100 KiB library would be.
    #[test]
    fn files_read_by_plan_report_what_their_bytes_say() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elf");
        let tmp = tempfile::tempdir().unwrap();
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let mut data = std::fs::read(entry.path()).unwrap();
            if !super::super::is_elf(&data) {
                continue;
            }
            data.resize(100 * 1024, 0);
            assert!(data.len() as u64 > READ_WHOLE);
            let path = tmp.path().join(entry.file_name());
            std::fs::write(&path, &data).unwrap();
            let whole = super::super::inspect_bytes(&data);
            assert!(whole.is_ok(), "{}: {whole:?}", path.display());
            let by_plan = with_walked_file_bytes(&path, super::super::inspect_bytes).unwrap();
            assert_eq!(by_plan, whole, "{}", path.display());
            checked += 1;
        }
        assert!(checked >= 10, "fixtures missing");
    }

    /// What the bench replays as kiln's reads: a small file whole; a large ELF file's first
    /// page and every planned range, sorted and disjoint; a large non-ELF file's first page.
    #[test]
    fn cold_read_ranges_cover_what_the_reader_reads() {
        let tmp = tempfile::tempdir().unwrap();
        let small = tmp.path().join("small");
        std::fs::write(&small, b"#!/bin/sh\n").unwrap();
        assert_eq!(cold_read_ranges(&small).unwrap(), vec![(0..10)]);
        let text = tmp.path().join("text");
        std::fs::write(&text, vec![b'x'; 200 * 1024]).unwrap();
        assert_eq!(cold_read_ranges(&text).unwrap(), vec![(0..HEAD as u64)]);

        let data = std::fs::read("/proc/self/exe").unwrap();
        let ranges = cold_read_ranges(Path::new("/proc/self/exe")).unwrap();
        assert!(
            ranges.windows(2).all(|w| w[0].end < w[1].start),
            "{ranges:?}"
        );
        let covered =
            |r: &std::ops::Range<u64>| ranges.iter().any(|c| c.start <= r.start && r.end <= c.end);
        assert!(covered(&(0..HEAD as u64)));
        let planned = super::super::planned_ranges(&data);
        assert!(
            !planned.is_empty() && planned.iter().all(covered),
            "{planned:?}"
        );
        let bytes: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        assert!(bytes < data.len() as u64 / 2, "{bytes} of {}", data.len());
    }
}
