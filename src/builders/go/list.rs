//! Reading `go list -json`: the packages of a module, and which of them kiln builds.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::error::UsageError;

use super::{GoProject, MainPackage};

/// The fields `go list` prints: asking for a subset keeps the output small even with every
/// standard-library dependency listed.
pub(super) const LIST_FIELDS: &str = "ImportPath,Name,Dir,Standard,DepOnly,CgoFiles,Deps,Module";

/// One package as `go list -json` describes it (only the fields kiln reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListedPackage {
    pub import_path: String,
    pub name: String,
    pub dir: String,
    pub standard: bool,
    /// Pulled in only as a dependency of the packages asked for.
    pub dep_only: bool,
    pub cgo_files: Vec<String>,
    /// Import paths of every package this one depends on.
    pub deps: Vec<String>,
    pub module: Option<ListedModule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListedModule {
    pub path: String,
}

/// Parse `go list -json` output: a stream of JSON objects, not an array.
pub fn parse_list(stdout: &[u8]) -> anyhow::Result<Vec<ListedPackage>> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<ListedPackage>()
        .collect::<Result<_, _>>()
        .context("parsing `go list -json` output")
}

/// Pick the main packages among those `go list` printed (pure, for tests).
pub fn select_mains(
    listed: &[ListedPackage],
    wanted_bins: &[String],
    dir: &Path,
) -> anyhow::Result<GoProject> {
    let cgo_pkgs: BTreeSet<&str> = listed
        .iter()
        .filter(|p| !p.standard && !p.cgo_files.is_empty())
        .map(|p| p.import_path.as_str())
        .collect();
    let mut mains: Vec<MainPackage> = listed
        .iter()
        .filter(|p| !p.dep_only && p.name == "main")
        .map(|p| MainPackage {
            import_path: p.import_path.clone(),
            bin: exec_name(&p.import_path),
            needs_cgo: cgo_pkgs.contains(p.import_path.as_str())
                || p.deps.iter().any(|d| cgo_pkgs.contains(d.as_str())),
        })
        .collect();
    let module = listed
        .iter()
        .find(|p| !p.dep_only)
        .and_then(|p| p.module.as_ref())
        .map(|m| m.path.clone())
        .unwrap_or_default();
    let names: Vec<String> = mains.iter().map(|m| m.bin.clone()).collect();
    if !wanted_bins.is_empty() {
        for b in wanted_bins {
            if !names.contains(b) {
                return Err(UsageError(format!(
                    "no main package builds `{b}` in {}; binaries: {}",
                    dir.display(),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                ))
                .into());
            }
        }
        mains.retain(|m| wanted_bins.contains(&m.bin));
    }
    if mains.is_empty() {
        return Err(UsageError(format!(
            "the Go module at {} has no main package: kiln builds executables. Add a `package main` \
             with `func main()` (e.g. cmd/NAME/main.go), or point `[go] packages` in kiln.toml at one.",
            dir.display()
        ))
        .into());
    }
    let mut seen = BTreeSet::new();
    for m in &mains {
        if !seen.insert(m.bin.as_str()) {
            let same: Vec<&str> = mains
                .iter()
                .filter(|o| o.bin == m.bin)
                .map(|o| o.import_path.as_str())
                .collect();
            return Err(UsageError(format!(
                "main packages {} would all be built as `{}`; pick one with --bin or `[go] packages`",
                same.join(" and "),
                m.bin
            ))
            .into());
        }
    }
    Ok(GoProject {
        dir: dir.to_path_buf(),
        module,
        mains,
    })
}

/// The name `go build` gives a main package's executable: the last element of its import
/// path, skipping a major-version suffix (`example.com/tool/v2` → `tool`).
pub fn exec_name(import_path: &str) -> String {
    let mut elems = import_path.rsplit('/');
    let last = elems.next().unwrap_or(import_path);
    if is_version_element(last)
        && let Some(prev) = elems.next()
    {
        return prev.to_string();
    }
    last.to_string()
}

/// `v2`, `v3`, … but not `v0`, `v1` or `v01` (Go's own rule).
pub(super) fn is_version_element(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('v') else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
        && digits != "1"
}
