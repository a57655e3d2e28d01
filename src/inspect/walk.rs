//! Files and directories on this machine turned into [`Inspection`] entries. Directories
//! are walked without following symlinks, so a symlink loop cannot trap the walk and no
//! file is reported twice; files are inspected in parallel, while the walk goes on.

use std::path::{Path, PathBuf};

use super::report::{FileEntry, Inspection, Summary};
use super::verify::{Policy, verify};
use crate::elf::{ElfError, inspect_path, inspect_walked_path};
use crate::par::{cpus, par_map_fed};

/// Workers per CPU for reading files: with a cold page cache the walk waits on the disk,
/// and more reads in flight than cores keep it busy (measured: `cargo xtask bench inspect`).
const IO_WORKERS_PER_CPU: usize = 4;

/// Directory depth beyond which the walk stops (a loop through bind mounts, or a tree no
/// real project has).
const MAX_DEPTH: usize = 128;

/// A file to inspect, or a path that could not be walked.
enum Found {
    File(PathBuf),
    /// A file named on the command line: not being ELF is an error, not a skip.
    Named(PathBuf),
    Error(PathBuf, String),
}

/// Inspect files and directories (recursively) against a policy, adding to `out` in input
/// order. One pool of workers reads the files of every input while the directories are
/// still being walked: with a cold page cache both wait on the disk, and a large file at
/// the end of one input does not hold up the next.
pub fn inspect_trees(inputs: &[&Path], policy: &Policy, out: &mut Inspection) {
    if inputs.is_empty() {
        return;
    }
    let inspect = |f: Found| match f {
        Found::File(path) => inspect_one(&path, policy, inspect_walked_path),
        Found::Named(path) => Some(
            inspect_one(&path, policy, inspect_path)
                .unwrap_or_else(|| FileEntry::error(display(&path), describe_non_elf(&path))),
        ),
        Found::Error(path, e) => Some(FileEntry::error(display(&path), e)),
    };
    let summary = &mut out.summary;
    let feed = |found: &mut dyn FnMut(Found)| {
        for input in inputs {
            // Paths named on the command line are followed if they are symlinks: the user
            // asked for them.
            match std::fs::metadata(input) {
                Ok(m) if m.is_dir() => walk_dir(input, 0, found, summary),
                Ok(_) => found(Found::Named(input.to_path_buf())),
                Err(e) => found(Found::Error(input.to_path_buf(), describe_io(&e))),
            }
        }
    };
    let results = par_map_fed(IO_WORKERS_PER_CPU * cpus(), feed, inspect);
    for r in results {
        match r {
            Some(e) => out.push(e),
            None => out.summary.skipped_non_elf += 1,
        }
    }
}

/// `None` when the file is not ELF.
fn inspect_one(
    path: &Path,
    policy: &Policy,
    inspect: fn(&Path) -> Result<crate::elf::ElfReport, ElfError>,
) -> Option<FileEntry> {
    let name = display(path);
    match inspect(path) {
        Ok(report) => {
            let problems = verify(&report, policy);
            Some(FileEntry::checked(name, report, problems))
        }
        Err(ElfError::NotElf) => None,
        Err(e) => Some(FileEntry::error(name, e.to_string())),
    }
}

/// What a file that is not ELF is, for the error on a file named explicitly: a pipeline
/// that runs `kiln inspect dist/app` must not take a script or a broken download for a
/// verified binary.
fn describe_non_elf(path: &Path) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(256).read_to_end(&mut head));
    if let Err(e) = read {
        return describe_io(&e);
    }
    let what = if head.is_empty() {
        "an empty file (0 bytes)".to_string()
    } else if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        format!(
            "a script (interpreter line `#!{}`)",
            String::from_utf8_lossy(line).trim()
        )
    } else {
        let start: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!(
            "data, not an ELF file (it starts with bytes {})",
            start.join(" ")
        )
    };
    format!(
        "not an ELF file: {what}. A file named on the command line must be a compiled program; \
         check the path, or rebuild or re-download it"
    )
}

fn walk_dir(dir: &Path, depth: usize, found: &mut dyn FnMut(Found), summary: &mut Summary) {
    if depth > MAX_DEPTH {
        found(Found::Error(
            dir.to_path_buf(),
            format!("more than {MAX_DEPTH} directories deep; not descending further"),
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            found(Found::Error(dir.to_path_buf(), describe_io(&e)));
            return;
        }
    };
    let mut children: Vec<(PathBuf, std::io::Result<std::fs::FileType>)> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => children.push((e.path(), e.file_type())),
            Err(e) => found(Found::Error(dir.to_path_buf(), describe_io(&e))),
        }
    }
    // Sorted, so output and JSON are the same on every run and filesystem.
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, ty) in children {
        match ty {
            Ok(t) if t.is_dir() => walk_dir(&path, depth + 1, found, summary),
            Ok(t) if t.is_file() => found(Found::File(path)),
            Ok(t) if t.is_symlink() => summary.skipped_symlinks += 1,
            Ok(_) => summary.skipped_special += 1,
            Err(e) => found(Found::Error(path, describe_io(&e))),
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn describe_io(e: &std::io::Error) -> String {
    format!("cannot read: {}", crate::elf::read::io_message(e))
}
