//! Per-language builders: each detects its kind of project and plans one [`Stage`] per
//! target, which returns the binaries it built ([`Built`]). What happens to them next (the
//! gate, `dist/`, smoke runs, images) is the pipeline's business (`crate::pipeline`).

pub mod answers;
pub mod c;
pub mod dir_lock;
pub mod fresh;
pub mod go;
pub mod rust;
pub mod rust_group;

use std::path::PathBuf;

use serde::Serialize;

use crate::config::BuildConfig;
use crate::digest::sha256_hex;
use crate::elf::ElfReport;
use crate::target::Target;

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
    /// The lock on the build directory `path` is in, for builders whose directory another
    /// kiln run may write into (cargo's target dir): held until every copy of this is
    /// dropped, after the pipeline has copied the binary out.
    pub hold: Option<std::sync::Arc<dir_lock::BuildDirLock>>,
}

/// Where Go and C builds keep per-target outputs, build directories and zig wrappers:
/// `<--target-dir>/kiln`, else `<project>/target/kiln` (the layout Rust builds use). Absolute,
/// because build tools run in other directories.
pub fn work_dir(cfg: &BuildConfig) -> PathBuf {
    let dir = cfg
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
