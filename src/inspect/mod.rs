//! The inspector: files, directory trees and images turned into reports, judged by the
//! gate ([`verify`]) and explained. `kiln inspect`, `kiln image` and the build all use the
//! same gate, so they give the same answer and the same explanation. Parsing ELF bytes is
//! `crate::elf`'s job; reading images is `crate::oci::read`'s.
//!
//! Modules: `verify` (policy, problems, explanations), `report` (what a run found),
//! `walk` (files and directories), `image` (images, with loader resolution inside them),
//! `printer` (table and JSON).

pub mod image;
pub mod printer;
pub mod report;
mod tree;
pub mod verify;
pub mod walk;

use std::path::{Path, PathBuf};

pub use report::{AttestationEntry, ExplainedProblem, FileEntry, Inspection, Status, Summary};
pub use verify::{
    Policy, Problem, Require, explain, problem_label, verify, verify_linkage, verify_platform,
};

/// Inspect files, directories (recursively) and images against a policy, in input order.
pub fn inspect_paths(inputs: &[PathBuf], policy: &Policy) -> Inspection {
    let mut out = Inspection::default();
    // Files and directories in a row are inspected together (one pool of readers).
    let mut paths: Vec<&Path> = Vec::new();
    for input in inputs {
        let as_str = input.to_string_lossy();
        if !image::is_image_ref(&as_str) {
            paths.push(input);
            continue;
        }
        walk::inspect_trees(&std::mem::take(&mut paths), policy, &mut out);
        match image::inspect_image(&as_str, policy) {
            Ok(found) => out.merge(found),
            Err(e) => out.push(FileEntry::error(as_str.into_owned(), format!("{e:#}"))),
        }
    }
    walk::inspect_trees(&paths, policy, &mut out);
    out
}

#[cfg(test)]
mod tests;
