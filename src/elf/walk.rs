//! `kiln inspect`'s inputs — files, directories, images — turned into one [`Inspection`]:
//! an entry per ELF file (or per file that could not be read) plus counts of what was
//! skipped. Directories are walked without following symlinks, so a symlink loop cannot
//! trap the walk and no file is reported twice; files are inspected in parallel.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::{ElfError, ElfReport, Policy, Problem, explain, inspect_path, verify};

/// Directory depth beyond which the walk stops (a loop through bind mounts, or a tree no
/// real project has).
const MAX_DEPTH: usize = 128;

/// Pass, fail, or could not be inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    Error,
}

/// A problem with its explanation, as printed and serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedProblem {
    #[serde(flatten)]
    pub problem: Problem,
    /// What is wrong, the likely cause, and how to fix it (the text the build gate prints).
    pub message: String,
}

/// One file's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// The path as given or found in the walk; for images, the path inside the image.
    pub path: String,
    /// For images: the image reference this file came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// For images: the platform of the manifest this file came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub status: Status,
    pub problems: Vec<ExplainedProblem>,
    /// Why the file could not be inspected.
    pub error: Option<String>,
    pub report: Option<ElfReport>,
}

impl FileEntry {
    /// An entry from a report and the problems found with it.
    pub fn checked(path: String, report: ElfReport, problems: Vec<Problem>) -> Self {
        let problems: Vec<ExplainedProblem> = problems
            .into_iter()
            .map(|p| ExplainedProblem {
                message: explain(&path, std::slice::from_ref(&p)),
                problem: p,
            })
            .collect();
        FileEntry {
            status: if problems.is_empty() {
                Status::Ok
            } else {
                Status::Fail
            },
            path,
            image: None,
            platform: None,
            problems,
            error: None,
            report: Some(report),
        }
    }

    pub fn error(path: String, error: String) -> Self {
        FileEntry {
            path,
            image: None,
            platform: None,
            status: Status::Error,
            problems: Vec::new(),
            error: Some(error),
            report: None,
        }
    }
}

/// Counts for the summary line and the JSON `summary` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// ELF files inspected.
    pub elf: usize,
    pub passed: usize,
    pub failed: usize,
    /// Files or directories that could not be read or parsed.
    pub errors: usize,
    /// Regular files that are not ELF.
    pub skipped_non_elf: usize,
    /// Symlinks met inside directories (not followed: their targets are reported where
    /// the walk finds them).
    pub skipped_symlinks: usize,
    /// Sockets, FIFOs and devices met inside directories.
    pub skipped_special: usize,
}

/// Everything one `kiln inspect` run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub summary: Summary,
    pub files: Vec<FileEntry>,
}

impl Inspection {
    /// Add entries and update the counts.
    pub fn push(&mut self, entry: FileEntry) {
        match entry.status {
            Status::Ok => {
                self.summary.elf += 1;
                self.summary.passed += 1
            }
            Status::Fail => {
                self.summary.elf += 1;
                self.summary.failed += 1
            }
            Status::Error => self.summary.errors += 1,
        }
        self.files.push(entry);
    }

    pub fn merge(&mut self, other: Inspection) {
        let s = &other.summary;
        self.summary.skipped_non_elf += s.skipped_non_elf;
        self.summary.skipped_symlinks += s.skipped_symlinks;
        self.summary.skipped_special += s.skipped_special;
        for f in other.files {
            self.push(f);
        }
    }
}

/// A file to inspect, or a path that could not be walked.
enum Found {
    File(PathBuf),
    /// A file named on the command line: not being ELF is an error, not a skip.
    Named(PathBuf),
    Error(PathBuf, String),
}

/// Inspect files, directories (recursively) and images against a policy, in input order.
pub fn inspect_paths(inputs: &[PathBuf], policy: &Policy) -> Inspection {
    let mut out = Inspection::default();
    for input in inputs {
        let as_str = input.to_string_lossy();
        if super::image::is_image_ref(&as_str) {
            match super::image::inspect_image(&as_str, policy) {
                Ok(found) => out.merge(found),
                Err(e) => out.push(FileEntry::error(as_str.into_owned(), format!("{e:#}"))),
            }
            continue;
        }
        let mut found = Vec::new();
        // Paths named on the command line are followed if they are symlinks: the user
        // asked for them.
        match std::fs::metadata(input) {
            Ok(m) if m.is_dir() => walk_dir(input, 0, &mut found, &mut out.summary),
            Ok(_) => found.push(Found::Named(input.clone())),
            Err(e) => found.push(Found::Error(input.clone(), describe_io(&e))),
        }
        let results: Vec<Option<FileEntry>> = found
            .par_iter()
            .map(|f| match f {
                Found::File(path) => inspect_one(path, policy),
                Found::Named(path) => Some(
                    inspect_one(path, policy)
                        .unwrap_or_else(|| FileEntry::error(display(path), describe_non_elf(path))),
                ),
                Found::Error(path, e) => Some(FileEntry::error(display(path), e.clone())),
            })
            .collect();
        for r in results {
            match r {
                Some(e) => out.push(e),
                None => out.summary.skipped_non_elf += 1,
            }
        }
    }
    out
}

/// `None` when the file is not ELF.
fn inspect_one(path: &Path, policy: &Policy) -> Option<FileEntry> {
    let name = display(path);
    match inspect_path(path) {
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

fn walk_dir(dir: &Path, depth: usize, found: &mut Vec<Found>, summary: &mut Summary) {
    if depth > MAX_DEPTH {
        found.push(Found::Error(
            dir.to_path_buf(),
            format!("more than {MAX_DEPTH} directories deep; not descending further"),
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            found.push(Found::Error(dir.to_path_buf(), describe_io(&e)));
            return;
        }
    };
    let mut children: Vec<(PathBuf, std::io::Result<std::fs::FileType>)> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => children.push((e.path(), e.file_type())),
            Err(e) => found.push(Found::Error(dir.to_path_buf(), describe_io(&e))),
        }
    }
    // Sorted, so output and JSON are the same on every run and filesystem.
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, ty) in children {
        match ty {
            Ok(t) if t.is_dir() => walk_dir(&path, depth + 1, found, summary),
            Ok(t) if t.is_file() => found.push(Found::File(path)),
            Ok(t) if t.is_symlink() => summary.skipped_symlinks += 1,
            Ok(_) => summary.skipped_special += 1,
            Err(e) => found.push(Found::Error(path, describe_io(&e))),
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn describe_io(e: &std::io::Error) -> String {
    format!("cannot read: {}", super::read::io_message(e))
}
