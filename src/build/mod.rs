//! Per-language builders (each returns the binaries it built for one target) and what
//! every artifact goes through after: copy to `dist/`, hash, the inspector gate, smoke run.

pub mod c;
pub mod fresh;
pub mod go;
pub mod rust;
pub mod rust_group;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::Require;
use crate::config::BuildConfig;
use crate::elf::{self, ElfReport, Policy};
use crate::error::VerificationFailed;
use crate::exec::Cmd;
use crate::target::Target;
use crate::toolchain::{self, Runner};

/// A built, verified binary.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    /// The target's platform string, for JSON.
    pub platform: String,
    #[serde(skip)]
    pub target: Target,
    /// Binary name.
    pub name: String,
    /// Where it was copied: `<out-dir>/<os>-<arch>[-<variant>]/<name>`.
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub report: ElfReport,
    /// With `--smoke`: the first line the binary printed when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke: Option<String>,
}

/// What a builder planned: the binaries, metadata for image annotations, and one stage per
/// target. Stages run in parallel; everything slow and shared (toolchain installs) happens
/// while planning, one at a time.
pub struct Plan {
    /// "rust", "go" or "c".
    pub language: &'static str,
    /// Binary names every stage builds.
    pub bins: Vec<String>,
    pub package: Option<PackageInfo>,
    pub stages: Vec<Stage>,
}

/// One target's build: a closure that runs the build tool and returns the binaries.
pub struct Stage {
    pub target: Target,
    pub run: Box<dyn Fn() -> anyhow::Result<Vec<Built>> + Send + Sync>,
}

/// Project metadata for OCI annotations (title, version, description, licenses, source).
#[derive(Debug, Clone, Default)]
pub struct PackageInfo {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub license: Option<String>,
    pub repository: Option<String>,
}

/// A binary a builder produced, before it is checked.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub path: PathBuf,
}

/// Where Go and C builds keep per-target outputs, build directories and zig wrappers:
/// `<--target-dir>/kiln`, else `<project>/target/kiln` (the layout Rust builds use). Absolute,
/// because build tools run in other directories.
pub fn work_dir(cfg: &BuildConfig) -> PathBuf {
    let dir = cfg
        .cargo
        .target_dir
        .clone()
        .unwrap_or_else(|| cfg.project_dir.join("target"))
        .join("kiln");
    std::path::absolute(&dir).unwrap_or(dir)
}

/// `<work_dir>/<language>/<project>-<hash of its path>`: one directory per project, so
/// projects sharing a `--target-dir` never write into each other's build directories.
pub fn project_work_dir(cfg: &BuildConfig, language: &str) -> PathBuf {
    let project = std::path::absolute(&cfg.project_dir).unwrap_or_else(|_| cfg.project_dir.clone());
    let name = project
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "project".into());
    let hash = sha256_hex(project.as_os_str().as_encoded_bytes());
    work_dir(cfg)
        .join(language)
        .join(format!("{name}-{}", &hash[..8]))
}

/// sha256 of a byte slice, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Copy a built binary into `out_dir`, hash it and run the inspector gate on it.
/// Fails with [`VerificationFailed`] (exit 3) when it is not static or not for `target`.
pub fn finish_artifact(target: &Target, built: &Built, out_dir: &Path) -> anyhow::Result<Artifact> {
    let data = fs_err::read(&built.path)?;
    let report = elf::inspect_bytes(&data)
        .map_err(|e| anyhow::anyhow!("{}: {e}", built.path.display()))
        .with_context(|| format!("inspecting {} for {}", built.name, target.platform))?;
    let problems = elf::verify(
        &report,
        &Policy {
            require: Require::Static,
            target: Some(target.clone()),
        },
    );
    if !problems.is_empty() {
        return Err(VerificationFailed(format!(
            "{} for {} failed verification:\n{}",
            built.name,
            target.platform,
            elf::explain(&built.path.display().to_string(), &problems)
        ))
        .into());
    }
    let dir = out_dir.join(target.platform.dir_name());
    fs_err::create_dir_all(&dir)?;
    let dest = dir.join(&built.name);
    write_atomic(&dest, &data, 0o755)?;
    Ok(Artifact {
        platform: target.platform.to_string(),
        target: target.clone(),
        name: built.name.clone(),
        path: dest,
        sha256: sha256_hex(&data),
        size: data.len() as u64,
        report,
        smoke: None,
    })
}

/// Write `data` to `dest` through a temporary file in the same directory and a rename, so a
/// reader never sees half a file. Skips the write when the content is already there.
pub fn write_atomic(dest: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(existing) = std::fs::read(dest)
        && existing == data
    {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, data)
        .with_context(|| format!("writing {}", dest.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.persist(dest)
        .with_context(|| format!("renaming into {}", dest.display()))?;
    Ok(())
}

/// How long a smoke run may take before it is called hung.
pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Run an artifact once (under qemu-user when foreign). Returns its first line of output.
pub fn smoke(artifact: &Artifact, args: &[String]) -> anyhow::Result<String> {
    let target = &artifact.target;
    let summary = format!("smoke-run {} for {}", artifact.name, target.platform);
    let cmd = match toolchain::runner(target)? {
        Runner::Direct => Cmd::new(&artifact.path, summary),
        Runner::Qemu(q) => Cmd::new(q, summary).arg(&artifact.path),
    };
    let out = cmd.args(args).run_with_timeout(SMOKE_TIMEOUT)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout.lines().next().unwrap_or("").to_string())
}
