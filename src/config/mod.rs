//! What kiln resolved: CLI > environment > file (`kiln.toml` or
//! `[package.metadata.kiln]` in Cargo.toml) > defaults, in one plain struct.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::{BuildArgs, CargoFlags};
use crate::error::UsageError;
use crate::oci::spec::{DEFAULT_BIN_DIR, DEFAULT_USER, ImageSettings};
use crate::target::{Target, Targets};

mod explain;
mod file;
mod release;

pub use explain::explain_build;
pub use file::{
    CConfig, FileComponent, FileConfig, FileEntry, FileImage, FileRelease, FileVariant, GoConfig,
    LintConfig, read_file_config,
};
pub use release::ReleaseConfig;
use release::resolve_release;

/// Platforms built when nothing says otherwise.
pub const DEFAULT_PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

/// The image settings after resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// Image name used in tags when an output gives none.
    pub name: Option<String>,
    /// `uid:gid` the entrypoint runs as.
    pub user: String,
    /// Entrypoint; `None` = the one binary at `bin_dir/name`.
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<String>,
    pub stop_signal: Option<String>,
    /// Directory inside the image that holds the binaries.
    pub bin_dir: String,
    /// What the image is built on.
    pub base: crate::oci::Base,
    pub compression: crate::oci::Compression,
    /// Extra files, `src` resolved against the project directory.
    pub files: Vec<FileEntry>,
}

/// cargo's own flags, as given: passed through to `cargo metadata` and `cargo build`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CargoConfig {
    /// `--release`.
    pub release: bool,
    /// `--profile NAME`.
    pub profile: Option<String>,
    /// `-p SPEC`: packages to build (default: the workspace's default members).
    pub packages: Vec<String>,
    /// `--features`, each as given (space- or comma-separated lists).
    pub features: Vec<String>,
    /// `--all-features`.
    pub all_features: bool,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--locked`.
    pub locked: bool,
    /// `--offline`.
    pub offline: bool,
    /// `--frozen`.
    pub frozen: bool,
    /// `--manifest-path`; `None` = `<project>/Cargo.toml`.
    pub manifest_path: Option<PathBuf>,
    /// `--auditable`: build with `cargo auditable build`, embedding the dependency list.
    pub auditable: bool,
}

impl From<&CargoFlags> for CargoConfig {
    fn from(f: &CargoFlags) -> CargoConfig {
        CargoConfig {
            release: f.release,
            profile: f.profile.clone(),
            packages: f.packages.clone(),
            features: f.features.clone(),
            all_features: f.all_features,
            no_default_features: f.no_default_features,
            locked: f.locked,
            offline: f.offline,
            frozen: f.frozen,
            manifest_path: f.manifest_path.clone(),
            auditable: false,
        }
    }
}

impl ImageConfig {
    /// The settings the image writer takes (`oci::spec`, where the defaults live).
    pub fn settings(&self) -> ImageSettings {
        ImageSettings {
            user: Some(self.user.clone()),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: self.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            workdir: self.workdir.clone(),
            labels: self.labels.clone(),
            ports: self.ports.clone(),
            stop_signal: self.stop_signal.clone(),
            annotations: Default::default(),
            bin_dir: Some(self.bin_dir.clone()),
        }
    }
}

/// Everything `kiln build` needs, resolved.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// The project directory.
    pub project_dir: PathBuf,
    /// Targets to build, in the order given.
    pub targets: Vec<Target>,
    /// Image destinations (`oci:DIR[:TAG]`); empty = no image.
    pub outputs: Vec<String>,
    /// The platform a docker-archive output holds (default: this machine's).
    pub docker_platform: Option<String>,
    /// Where binaries are copied: `<out_dir>/<os>-<arch>[-<variant>]/<name>`.
    pub out_dir: PathBuf,
    /// Run each binary once after building.
    pub smoke: bool,
    /// Arguments for the smoke run.
    pub smoke_args: Vec<String>,
    /// The most compiler jobs at once, all targets together (`-j`, `jobs =`); `None` = one
    /// per CPU, or the jobserver of a parent make (see `crate::jobs`).
    pub jobs: Option<usize>,
    pub image: ImageConfig,
    /// Binaries to build (`--bin`); empty = every binary of the project.
    pub bins: Vec<String>,
    /// `--target-dir`: where build products go (kiln uses `<dir>/kiln/...`); `None` = the
    /// project's own (`target/`, or cargo's workspace target directory).
    pub target_dir: Option<PathBuf>,
    /// cargo's own flags, passed through to every `cargo build`.
    pub cargo: CargoConfig,
    /// `[go]` settings (defaults when absent).
    pub go: GoConfig,
    /// `[c]` settings (defaults when absent).
    pub c: CConfig,
    /// SBOMs, provenance, archives.
    pub release: ReleaseConfig,
    /// `[[component]]` tables (a polyglot image); empty for a single project.
    pub components: Vec<FileComponent>,
    /// `--component`: the components to build (with what they need); empty = all.
    pub only_components: Vec<String>,
    /// `--debug-image`: also write each image's debug twin (`<tag>-debug`, with busybox).
    pub debug_image: bool,
    /// The `[variant.NAME]` applied (`--variant NAME`), if any.
    pub variant: Option<String>,
    /// The names of the file's `[variant.*]` tables, in name order.
    pub variant_names: Vec<String>,
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
}

/// The distroless lock file and .deb directory belong to the project, not to the directory
/// kiln happens to run in.
fn project_relative_base(base: crate::oci::Base, project_dir: &Path) -> crate::oci::Base {
    use crate::oci::{Base, distroless::DistrolessSource};
    match base {
        Base::Distroless(DistrolessSource::Debs { lock, debs }) => {
            Base::Distroless(DistrolessSource::Debs {
                lock: project_dir.join(lock),
                debs: debs.map(|d| project_dir.join(d)),
            })
        }
        other => other,
    }
}

/// `[image] files`, each source resolved inside the project (unless allowed outside) and
/// directories expanded to their files; any problem is a usage error before the build.
fn image_files(
    project_dir: &Path,
    files: Vec<FileEntry>,
    allow_outside: bool,
) -> anyhow::Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    for f in files {
        for s in crate::oci::sources::resolve(project_dir, &f.src, &f.dst, f.mode, allow_outside)? {
            out.push(FileEntry {
                src: s.src,
                dst: s.dst,
                mode: s.mode,
            });
        }
    }
    Ok(out)
}

/// The image settings of a config, checked before anything is built (exit 2).
fn validate_image(image: &ImageConfig) -> anyhow::Result<()> {
    let spec = image.settings().spec(&[], None);
    if let Some(k) = image.env.keys().find(|k| k.is_empty() || k.contains('=')) {
        return Err(UsageError(format!(
            "[image] env key `{k}` is not valid: give a non-empty KEY without `=`"
        ))
        .into());
    }
    if image.entrypoint.as_ref().is_some_and(Vec::is_empty) {
        return Err(UsageError(
            "[image] entrypoint is an empty list: name the program to run, or leave it out \
             to run the first binary"
                .into(),
        )
        .into());
    }
    let has_passwd = match &image.base {
        crate::oci::Base::Scratch => Some(image.files.iter().any(|f| f.dst == "/etc/passwd")),
        crate::oci::Base::Distroless(_) => Some(true),
        _ => None,
    };
    crate::oci::validate::image_spec(&spec, has_passwd)?;
    Ok(())
}

/// Resolve `kiln build`'s settings.
pub fn resolve_build(args: &BuildArgs) -> anyhow::Result<BuildConfig> {
    resolve_from(args, Sources::ALL)
}

/// Which sources a resolution reads besides the command line: every one for a build;
/// `--print-config` resolves again without each to tell where a value came from.
#[derive(Debug, Clone, Copy)]
struct Sources {
    file: bool,
    env: bool,
    variant: bool,
}

impl Sources {
    const ALL: Sources = Sources {
        file: true,
        env: true,
        variant: true,
    };
}

fn resolve_from(args: &BuildArgs, sources: Sources) -> anyhow::Result<BuildConfig> {
    let project_dir = match &args.path {
        Some(p) => p.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    if !project_dir.is_dir() {
        return Err(UsageError(format!(
            "{} is not a directory. Give the project directory: `kiln build PATH`.",
            project_dir.display()
        ))
        .into());
    }
    let file = if sources.file {
        read_file_config(&project_dir)?
    } else {
        FileConfig::default()
    };
    let env_var = |name: &str| std::env::var_os(name).filter(|_| sources.env);
    let table = Targets::builtin();

    let platforms: Vec<String> = if !args.platforms.is_empty() {
        args.platforms.clone()
    } else if let Some(p) = env_list("KILN_PLATFORMS").filter(|_| sources.env) {
        p
    } else if let Some(p) = &file.platforms {
        p.clone()
    } else {
        DEFAULT_PLATFORMS.iter().map(|s| s.to_string()).collect()
    };
    let targets = table.resolve(&platforms)?;
    if targets.is_empty() {
        return Err(UsageError("no platform given: pass --platform linux/amd64,...".into()).into());
    }

    let out_dir = args
        .out_dir
        .clone()
        .or_else(|| env_var("KILN_OUT_DIR").map(PathBuf::from))
        .or_else(|| file.out_dir.clone())
        .unwrap_or_else(|| PathBuf::from("dist"));
    let out_dir = if out_dir.is_absolute() {
        out_dir
    } else {
        std::env::current_dir()?.join(out_dir)
    };

    let fi = file.image.clone().unwrap_or_default();
    let image = ImageConfig {
        name: fi.name,
        user: fi.user.unwrap_or_else(|| DEFAULT_USER.to_string()),
        entrypoint: fi.entrypoint,
        cmd: fi.cmd.unwrap_or_default(),
        env: fi.env.unwrap_or_default(),
        workdir: fi.workdir,
        labels: fi.labels.unwrap_or_default(),
        ports: fi.ports.unwrap_or_default(),
        stop_signal: fi.stop_signal,
        bin_dir: fi.bin_dir.unwrap_or_else(|| DEFAULT_BIN_DIR.to_string()),
        base: match args.base.as_deref().or(fi.base.as_deref()) {
            Some(b) => project_relative_base(b.parse()?, &project_dir),
            None => crate::oci::Base::Scratch,
        },
        compression: args.compression.or(fi.compression).unwrap_or_default(),
        files: image_files(
            &project_dir,
            fi.files.unwrap_or_default(),
            args.allow_outside_project,
        )?,
    };
    validate_image(&image)?;

    let outputs = if args.outputs.is_empty() {
        file.output.clone().unwrap_or_default()
    } else {
        args.outputs.clone()
    };
    let mut cfg = BuildConfig {
        docker_platform: args.docker_platform.clone(),
        smoke: args.smoke || file.smoke.unwrap_or(false),
        smoke_args: if args.smoke_args.is_empty() {
            file.smoke_args.clone().unwrap_or_default()
        } else {
            args.smoke_args.clone()
        },
        jobs: args.jobs.or(file.jobs).map(|n| n.max(1)),
        targets,
        out_dir,
        image,
        bins: args.cargo.bins.clone(),
        // Absolute: build tools run kiln's wrappers under it from other directories (a
        // -sys crate's configure + make in its OUT_DIR).
        target_dir: args
            .cargo
            .target_dir
            .as_deref()
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf())),
        cargo: CargoConfig {
            auditable: args.auditable,
            ..CargoConfig::from(&args.cargo)
        },
        go: file.go.clone().unwrap_or_default(),
        c: file.c.clone().unwrap_or_default(),
        release: resolve_release(args, file.release.clone().unwrap_or_default(), &outputs)?,
        outputs,
        components: file.component.clone().unwrap_or_default(),
        only_components: args.components.clone(),
        debug_image: args.debug_image || file.debug_image.unwrap_or(false),
        variant: None,
        variant_names: file
            .variant
            .as_ref()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default(),
        project_dir,
    };
    if let Some(name) = args
        .variant
        .as_deref()
        .filter(|v| *v != "all" && sources.variant)
    {
        let v = variant(&file, name)?;
        apply_variant(&mut cfg, v, args)?;
        cfg.variant = Some(name.to_string());
    }
    Ok(cfg)
}

/// The `[variant.NAME]` table, or a usage error naming the ones there are.
fn variant<'a>(file: &'a FileConfig, name: &str) -> anyhow::Result<&'a FileVariant> {
    let known = file.variant.as_ref();
    known.and_then(|v| v.get(name)).ok_or_else(|| {
        let names: Vec<&str> = known
            .map(|v| v.keys().map(String::as_str).collect())
            .unwrap_or_default();
        UsageError(if names.is_empty() {
            format!("--variant {name}: kiln.toml has no [variant.*] tables; add [variant.{name}]")
        } else {
            format!(
                "--variant {name}: no [variant.{name}] in kiln.toml (variants: {}, or all)",
                names.join(", ")
            )
        })
        .into()
    })
}

/// A variant's settings over the file's (the command line's `--base` still wins).
fn apply_variant(cfg: &mut BuildConfig, v: &FileVariant, args: &BuildArgs) -> anyhow::Result<()> {
    cfg.cargo.features.extend(v.features.iter().cloned());
    cfg.go.tags.extend(v.go_tags.iter().cloned());
    if v.go_ldflags.is_some() {
        cfg.go.ldflags = v.go_ldflags.clone();
    }
    cfg.c.defines.extend(v.c_defines.iter().cloned());
    cfg.image.env.extend(v.env.clone());
    cfg.image.labels.extend(v.labels.clone());
    if let (Some(b), None) = (&v.base, &args.base) {
        cfg.image.base = project_relative_base(b.parse()?, &cfg.project_dir);
    }
    cfg.debug_image |= v.debug;
    validate_image(&cfg.image)
}
/// The configuration one project component of a polyglot build is built with: the root's
/// platforms, output directory, jobs, smoke and target directory; the component's own
/// config file for `[go]`, `[c]` and `smoke-args`; the component table's features, bins and
/// smoke arguments. It writes no image and no release files of its own.
pub fn component_config(
    root: &BuildConfig,
    dir: &Path,
    component: &FileComponent,
) -> anyhow::Result<BuildConfig> {
    let file = read_file_config(dir)?;
    let mut cargo = root.cargo.clone();
    cargo.features.extend(component.features.iter().cloned());
    cargo.manifest_path = None;
    cargo.packages = Vec::new();
    Ok(BuildConfig {
        project_dir: dir.to_path_buf(),
        outputs: Vec::new(),
        smoke_args: component
            .smoke_args
            .clone()
            .or(file.smoke_args)
            .unwrap_or_else(|| root.smoke_args.clone()),
        bins: component.bins.clone(),
        cargo,
        go: file.go.unwrap_or_default(),
        c: file.c.unwrap_or_default(),
        release: ReleaseConfig::default(),
        components: Vec::new(),
        only_components: Vec::new(),
        variant_names: Vec::new(),
        ..root.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_metadata_table_is_read() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("Cargo.toml"),
            r#"[package]
name = "x"
version = "0.1.0"

[package.metadata.kiln]
platforms = ["linux/arm64"]
smoke-args = ["--check"]

[package.metadata.kiln.image]
name = "x-image"
user = "1000:1000"
env = { RUST_LOG = "info" }
"#,
        )
        .unwrap();
        let c = read_file_config(dir.path()).unwrap();
        assert_eq!(c.platforms.unwrap(), ["linux/arm64"]);
        assert_eq!(c.smoke_args.unwrap(), ["--check"]);
        let img = c.image.unwrap();
        assert_eq!(img.name.as_deref(), Some("x-image"));
        assert_eq!(img.user.as_deref(), Some("1000:1000"));
        assert_eq!(img.env.unwrap()["RUST_LOG"], "info");
    }

    #[test]
    fn kiln_toml_wins_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("kiln.toml"), "platfroms = [\"arm64\"]\n").unwrap();
        let err = read_file_config(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("platfroms") && err.contains("kiln.toml"),
            "{err}"
        );
    }

    #[test]
    fn cli_beats_file_and_defaults_fill_in() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("kiln.toml"),
            "platforms = [\"linux/arm/v7\"]\nsmoke = true\n",
        )
        .unwrap();
        let mut args = BuildArgs {
            path: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let c = resolve_build(&args).unwrap();
        assert_eq!(c.targets[0].name, "armv7");
        assert!(c.smoke);
        assert_eq!(c.image.user, DEFAULT_USER);
        assert_eq!(c.image.bin_dir, DEFAULT_BIN_DIR);
        args.platforms = vec!["arm64,amd64".into()];
        let c = resolve_build(&args).unwrap();
        assert_eq!(
            c.targets
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["arm64", "amd64"]
        );
    }

    #[test]
    fn missing_directory_is_a_usage_error() {
        let args = BuildArgs {
            path: Some(PathBuf::from("/nonexistent/kiln-project")),
            ..Default::default()
        };
        let err = resolve_build(&args).unwrap_err();
        assert!(err.is::<UsageError>());
    }
}
