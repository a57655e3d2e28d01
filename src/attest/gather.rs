//! The impure edge of attest: asking cargo for a target's resolve graph and zig for the
//! musl it links. Everything else in `attest` is plain data in, bytes out.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cargo_metadata::{Metadata, MetadataCommand, PackageId};

use super::sources::{self, Found, LockChecksums};

/// `cargo metadata --filter-platform TRIPLE` with the build's feature flags: the resolve
/// graph of exactly what cargo compiles for that target.
pub fn cargo_metadata_for(
    cargo: &Path,
    manifest: &Path,
    triple: &str,
    feature_args: &[String],
) -> anyhow::Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo).manifest_path(manifest);
    let mut other = vec!["--filter-platform".to_string(), triple.to_string()];
    other.extend(feature_args.iter().cloned());
    cmd.other_options(other);
    cmd.exec().with_context(|| {
        format!(
            "reading the dependencies of {} for {triple} (cargo metadata)",
            manifest.display()
        )
    })
}

/// [`cargo_metadata_for`] with cargo's JSON as it printed it (to keep, and parse again
/// later into the same [`Metadata`]).
pub fn cargo_metadata_json(
    cargo: &Path,
    manifest: &Path,
    triple: &str,
    feature_args: &[String],
) -> anyhow::Result<(Metadata, String)> {
    let out = crate::exec::Cmd::new(
        cargo,
        format!(
            "read the dependencies of {} for {triple} (cargo metadata)",
            manifest.display()
        ),
    )
    .args(["metadata", "--format-version", "1", "--manifest-path"])
    .arg(manifest)
    .args(["--filter-platform", triple])
    .args(feature_args)
    .read()?;
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("cargo metadata printed no JSON for {}", manifest.display()))?
        .to_string();
    Ok((metadata_from_json(&json)?, json))
}

/// Metadata from the JSON `cargo metadata` printed.
pub fn metadata_from_json(json: &str) -> anyhow::Result<Metadata> {
    MetadataCommand::parse(json).context("reading cargo metadata's JSON")
}

/// The crates compiled into the binaries named `bins` for the target `meta` was resolved
/// for: the workspace packages owning those binaries are the roots.
pub fn rust_found(meta: &Metadata, bins: &[String]) -> Found {
    let lock_path = meta.workspace_root.as_std_path().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .map(|t| LockChecksums::parse(&t))
        .unwrap_or_default();
    let roots: Vec<&PackageId> = meta
        .workspace_packages()
        .into_iter()
        .filter(|p| {
            p.targets
                .iter()
                .any(|t| t.is_bin() && bins.contains(&t.name))
        })
        .map(|p| &p.id)
        .collect();
    let mut found = Found::default();
    for root in roots {
        found.extend(sources::rust_packages(meta, root, &lock));
    }
    found.warnings.sort();
    found.warnings.dedup();
    found
}

/// The musl version zig links (`lib/libc/musl/src/internal/version.h` in zig's lib dir).
pub fn musl_version(zig: &Path) -> Option<String> {
    let out = crate::exec::Cmd::new(zig, "ask zig for its lib dir")
        .arg("env")
        .read()
        .ok()?;
    musl_version_in(&lib_dir(&out)?)
}

/// `lib_dir` from `zig env` (JSON in older zig, ZON in newer).
fn lib_dir(env: &str) -> Option<PathBuf> {
    let line = env.lines().find(|l| l.contains("lib_dir"))?;
    let start = line.find(':').or_else(|| line.find('='))? + 1;
    let value = line[start..]
        .trim()
        .trim_end_matches(',')
        .trim()
        .trim_matches('"');
    Some(PathBuf::from(value))
}

/// The `VERSION` define of musl's `version.h` under a zig lib dir.
pub fn musl_version_in(lib_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib_dir.join("libc/musl/src/internal/version.h")).ok()?;
    let v = text.split('"').nth(1)?;
    (!v.is_empty()).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lib_dir_from_zon_and_json() {
        assert_eq!(
            lib_dir("    .lib_dir = \"/z/lib\",\n").unwrap(),
            PathBuf::from("/z/lib")
        );
        assert_eq!(
            lib_dir("{\n \"lib_dir\": \"/z/lib\",\n").unwrap(),
            PathBuf::from("/z/lib")
        );
    }
}
