//! What an inspection found, as printed and serialized: one [`FileEntry`] per ELF file (or
//! per file that could not be read) and the [`Summary`] counts.

use serde::Serialize;

use super::verify::{Problem, explain};
use crate::elf::ElfReport;

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

/// An SBOM, provenance or other OCI 1.1 artifact attached to an inspected image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationEntry {
    /// The image as named on the command line.
    pub image: String,
    /// The platform whose manifest is its subject; absent when the subject is the index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(flatten)]
    pub attachment: crate::oci::referrers::Attachment,
}

/// Everything one `kiln inspect` run found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub summary: Summary,
    pub files: Vec<FileEntry>,
    /// What is attached to the images inspected (SBOMs, provenance).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationEntry>,
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
        self.attestations.extend(other.attestations);
    }
}
