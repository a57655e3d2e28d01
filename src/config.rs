//! What kiln resolved: CLI > environment > file (`kiln.toml` or
//! `[package.metadata.kiln]` in Cargo.toml) > defaults, in one plain struct.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::cli::{BuildArgs, CargoFlags};
use crate::error::UsageError;
use crate::oci::spec::{DEFAULT_BIN_DIR, DEFAULT_USER, ImageSettings};
use crate::target::{Target, Targets};

/// Platforms built when nothing says otherwise.
pub const DEFAULT_PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

/// The `[package.metadata.kiln]` / `kiln.toml` file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub platforms: Option<Vec<String>>,
    pub output: Option<Vec<String>>,
    pub out_dir: Option<PathBuf>,
    pub smoke: Option<bool>,
    pub smoke_args: Option<Vec<String>>,
    pub jobs: Option<usize>,
    pub image: Option<FileImage>,
    /// `[go]`: how Go modules are built.
    pub go: Option<GoConfig>,
    /// `[c]`: how C projects are built.
    pub c: Option<CConfig>,
    /// `[release]`: SBOMs, provenance and archives.
    pub release: Option<FileRelease>,
    /// `[lint]`: `kiln lint` settings.
    pub lint: Option<LintConfig>,
    /// `[[component]]`: the projects and build steps of a polyglot image.
    pub component: Option<Vec<FileComponent>>,
    /// Write a debug twin of each image (`--debug-image`).
    pub debug_image: Option<bool>,
    /// `[variant.NAME]`: named sets of overrides (`--variant NAME`).
    pub variant: Option<BTreeMap<String, FileVariant>>,
}

/// `[variant.NAME]` in kiln.toml: build and image settings that differ from the file's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct FileVariant {
    /// Cargo features, added to `--features`.
    pub features: Vec<String>,
    /// Go build tags, added to `[go] tags`.
    pub go_tags: Vec<String>,
    /// Go `-ldflags`, instead of `[go] ldflags`.
    pub go_ldflags: Option<String>,
    /// C preprocessor definitions (`NAME` or `NAME=VALUE`), added to `[c] defines`.
    pub c_defines: Vec<String>,
    /// Image environment, over `[image] env`.
    pub env: BTreeMap<String, String>,
    /// Image labels, over `[image] labels`.
    pub labels: BTreeMap<String, String>,
    /// Image base, instead of `[image] base` (`--base` still wins).
    pub base: Option<String>,
    /// Also write debug twins (as `--debug-image`).
    pub debug: bool,
}

/// One `[[component]]` of a root kiln.toml: a Rust, Go or C project (`path`), or a command
/// that produces files (`name` + `build` + `output` + `dst`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct FileComponent {
    /// Name in `--component`, `needs` and messages; default: the file name of `path`.
    pub name: Option<String>,
    /// The project directory (relative to the root), built like `kiln build PATH`; for a
    /// `build` command, the directory it runs in (default: the root).
    pub path: Option<PathBuf>,
    /// A shell command producing files (a static-site step), run once with `sh -c`.
    pub build: Option<String>,
    /// What `build` produces: a file or directory relative to the command's directory.
    pub output: Option<PathBuf>,
    /// Where `output` goes in the image (absolute).
    pub dst: Option<String>,
    /// The output is the same for every platform: built once, one shared layer. Required
    /// (`true`) for `build` components; per-platform commands are C projects (`[c] build`).
    pub platform_independent: bool,
    /// Components that must be built before this one.
    pub needs: Vec<String>,
    /// Cargo features for a Rust project (added to `--features`).
    pub features: Vec<String>,
    /// Binaries to build (default: every binary of the project).
    pub bins: Vec<String>,
    /// Arguments for this component's `--smoke` run (default: its own config's `smoke-args`).
    pub smoke_args: Option<Vec<String>>,
}

/// `[release]` in kiln.toml: what a build writes besides binaries and images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct FileRelease {
    /// `spdx`, `cyclonedx`, `both` or `none`.
    pub sbom: Option<String>,
    /// `["tar.gz", "zip"]`.
    pub archives: Vec<String>,
    /// Write provenance even without an image.
    pub provenance: Option<bool>,
    /// `referrers` or `none`: attach SBOMs and provenance to images.
    pub attestations: Option<String>,
    /// Strip the binaries and keep their debug info in `<name>.debug` files.
    pub split_debuginfo: Option<bool>,
}

/// What a build writes besides binaries and images, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseConfig {
    /// SBOM formats; `None` writes none.
    pub sbom: Option<crate::attest::SbomFormat>,
    pub archives: crate::attest::outputs::Archives,
    pub provenance: bool,
    /// The command line, for provenance.
    pub command: Vec<String>,
    /// How to attach SBOMs and provenance to images; `None`: to registry outputs and
    /// tagged OCI layouts and archives (an untagged layout is read as one image).
    pub attestations: Option<crate::attest::Attestations>,
    /// `--sign-key`, read and checked.
    pub sign_key: Option<crate::attest::sign::SigningKey>,
    /// `--strip` / `split-debuginfo`: ship stripped binaries, debug info beside them.
    pub strip: bool,
}

impl ReleaseConfig {
    /// Attach to an output? `named`: a registry push or a tagged layout or archive.
    pub fn attach_to(&self, named: bool) -> bool {
        match self.attestations {
            Some(crate::attest::Attestations::Referrers) => true,
            Some(crate::attest::Attestations::None) => false,
            None => named,
        }
    }
}

/// `[lint]` in kiln.toml.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct LintConfig {
    /// Rule ids `kiln lint` does not report (`["KL014"]`).
    pub disable: Vec<String>,
}

/// `[go]` in kiln.toml: settings for Go modules. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct GoConfig {
    /// Package patterns whose main packages are built (`["./cmd/server"]`); default
    /// `["./..."]`, every main package in the module. `--bin NAME` narrows by binary name.
    pub packages: Vec<String>,
    /// Build tags, added to any `-tags` in the user's GOFLAGS.
    pub tags: Vec<String>,
    /// `true`: cgo on, with kiln's zig wrapper as CC/CXX and external static linking;
    /// `false`: `CGO_ENABLED=0`. Unset: the `CGO_ENABLED` environment variable if set, else
    /// on only when a package to build (or a non-standard dependency) has cgo files.
    pub cgo: Option<bool>,
    /// Keep the symbol table and DWARF (kiln passes `-ldflags "-s -w"` otherwise).
    pub debug: bool,
    /// Stamp version-control information into binaries (`-buildvcs=true`). Off by default:
    /// it needs `git` at build time and makes output depend on the checkout's state.
    pub buildvcs: bool,
    /// Extra `-ldflags`, after kiln's so they win (`"-X main.version=1.2.3"`).
    pub ldflags: Option<String>,
    /// Version for image annotations (go.mod has none).
    pub version: Option<String>,
}

/// `[c]` in kiln.toml: how a C (or C++) project is built. One of three shapes: `build` +
/// `output` (any command, e.g. make); a CMake project (CMakeLists.txt, no `build`); or
/// `sources` compiled directly with zig cc.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CConfig {
    /// Binary name in `dist/` and images; default: the file name of `output` (command
    /// shape), the project directory's name (sources shape).
    pub name: Option<String>,
    /// Version for image annotations.
    pub version: Option<String>,
    /// Shell command that builds the project (`"make -j2"`), run per target in a private
    /// copy of the project with CC, CXX, AR, RANLIB, CFLAGS, CXXFLAGS and LDFLAGS set.
    pub build: Option<String>,
    /// The binary `build` produces, relative to the project (so, to its per-target copy).
    /// For CMake projects: the executable target to keep (default: every executable).
    pub output: Option<String>,
    /// Extra arguments for CMake's configure step (`["-DWITH_TLS=OFF"]`).
    pub cmake_args: Vec<String>,
    /// Sources to compile directly (relative to the project; `.c`, or `.cc`/`.cpp`/`.cxx`
    /// for C++), when there is no `build` command and no CMakeLists.txt.
    pub sources: Vec<String>,
    /// Include directories for `sources` (relative to the project).
    pub include: Vec<String>,
    /// Preprocessor definitions for `sources`: `"NAME"` or `"NAME=VALUE"`.
    pub defines: Vec<String>,
    /// Libraries to link `sources` with: `"m"` (→ `-lm`), a path to a `.a`, or a flag.
    pub libs: Vec<String>,
    /// Optimisation level for every shape: `-O<opt>` (default `"2"`; `"s"`, `"z"`, `"0"`).
    pub opt: Option<String>,
    /// Keep debug info and symbols: `-g`, and no `-s` at link time.
    pub debug: bool,
    /// Extra compiler flags (after kiln's and before the user's CFLAGS).
    pub cflags: Vec<String>,
    /// Extra linker flags (after `-static`).
    pub ldflags: Vec<String>,
    /// What the binaries contain besides musl, for the SBOM:
    /// `[{ name = "zlib", version = "1.3.1", license = "Zlib", purl = "…", download-location = "…" }]`.
    pub components: Vec<crate::attest::sources::DeclaredComponent>,
}

/// `[package.metadata.kiln.image]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileImage {
    pub name: Option<String>,
    pub user: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub workdir: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub ports: Option<Vec<String>>,
    pub stop_signal: Option<String>,
    pub bin_dir: Option<String>,
    /// `scratch` (default), `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`.
    pub base: Option<String>,
    /// `gzip` (default), `zstd` or `none`.
    pub compression: Option<crate::oci::Compression>,
    /// Extra files: `{ src = "config/app.toml", dst = "/etc/app.toml", mode = 0o644 }`.
    pub files: Option<Vec<FileEntry>>,
}

/// One extra file or directory copied into the image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Path on the host, relative to the project directory.
    pub src: PathBuf,
    /// Absolute path in the image.
    pub dst: String,
    /// File mode; default 0644 for files, 0755 for directories.
    pub mode: Option<u32>,
}

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

/// Read the project's config file: `kiln.toml` if present, else `[package.metadata.kiln]`.
pub fn read_file_config(project_dir: &Path) -> anyhow::Result<FileConfig> {
    let kiln_toml = project_dir.join("kiln.toml");
    if kiln_toml.is_file() {
        let text = fs_err::read_to_string(&kiln_toml)?;
        return toml::from_str(&text)
            .map_err(|e| UsageError(format!("{}: {e}", kiln_toml.display())).into());
    }
    let cargo_toml = project_dir.join("Cargo.toml");
    if cargo_toml.is_file() {
        let text = fs_err::read_to_string(&cargo_toml)?;
        let value: toml::Value = toml::from_str(&text)
            .map_err(|e| UsageError(format!("{}: {e}", cargo_toml.display())))?;
        if let Some(meta) = value
            .get("package")
            .and_then(|p| p.get("metadata"))
            .and_then(|m| m.get("kiln"))
            .or_else(|| {
                value
                    .get("workspace")
                    .and_then(|w| w.get("metadata"))
                    .and_then(|m| m.get("kiln"))
            })
        {
            return meta.clone().try_into().map_err(|e| {
                UsageError(format!(
                    "{}: [package.metadata.kiln]: {e}",
                    cargo_toml.display()
                ))
                .into()
            });
        }
    }
    Ok(FileConfig::default())
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
        target_dir: args.cargo.target_dir.clone(),
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

/// `--print-config`: every setting of the resolved configuration (build, cargo, go, c,
/// image, release, components, variants) with where its value came from: `command line`,
/// `variant NAME`, `environment`, `file` or `default`. Each row is `(key, value, source)`;
/// `None` is an unset value. Lists that add up across sources (features, Go tags, C
/// defines, image env and labels, files) have a row per item, each with its own source.
///
/// The sources are found by resolving again without each of them, highest first: a value
/// that goes away without the command line came from it, and so on down to the defaults.
pub fn explain_build(args: &BuildArgs) -> anyhow::Result<Vec<(String, Option<String>, String)>> {
    let full = resolve_build(args)?;
    // The command line without its values; the project, the variant asked for and the
    // permission to read outside the project stay.
    let bare = BuildArgs {
        path: args.path.clone(),
        variant: args.variant.clone(),
        allow_outside_project: args.allow_outside_project,
        ..Default::default()
    };
    let without = |sources: Sources| -> Vec<(String, Option<String>)> {
        resolve_from(&bare, sources)
            .map(|c| config_rows(&c))
            .unwrap_or_default()
    };
    let no_variant = Sources {
        variant: false,
        ..Sources::ALL
    };
    let no_env = Sources {
        env: false,
        ..no_variant
    };
    let none = Sources {
        file: false,
        ..no_env
    };
    let layers = [
        (without(Sources::ALL), "command line".to_string()),
        (
            without(no_variant),
            format!("variant {}", full.variant.as_deref().unwrap_or_default()),
        ),
        (without(no_env), "environment".to_string()),
        (without(none), "file".to_string()),
    ];
    // A value set to what the default is does not go away without its source: the keys
    // given on the command line and written in the file tell those.
    let written = file_keys(&full.project_dir)?;
    let in_variant = |key: &str| {
        let v = full.variant.as_deref()?;
        let prefix = format!("variant.{v}.");
        written
            .iter()
            .filter_map(|w| w.strip_prefix(&prefix))
            .any(|w| variant_key(w) == key)
            .then(|| format!("variant {v}"))
    };
    let mut out = Vec::new();
    for row in config_rows(&full) {
        let key = row.0.as_str();
        let source = match layers.iter().find(|(rows, _)| !rows.contains(&row)) {
            _ if key == "variant" && row.1.is_some() => "command line".into(),
            Some((_, s)) => s.clone(),
            None if cli_sets(args, key) => "command line".into(),
            None if key == "project" && args.path.is_some() => "command line".into(),
            None => in_variant(key).unwrap_or_else(|| {
                if written.contains(key) {
                    "file".into()
                } else {
                    "default".into()
                }
            }),
        };
        out.push((row.0, row.1, source));
    }
    Ok(out)
}

/// Whether the command line gives the setting `key` (a row key of [`config_rows`]).
fn cli_sets(a: &BuildArgs, key: &str) -> bool {
    let c = &a.cargo;
    match key {
        "platforms" => !a.platforms.is_empty(),
        "output" => !a.outputs.is_empty(),
        "out-dir" => a.out_dir.is_some(),
        "smoke" => a.smoke,
        "smoke-args" => !a.smoke_args.is_empty(),
        "docker-platform" => a.docker_platform.is_some(),
        "jobs" => a.jobs.is_some(),
        "bins" => !c.bins.is_empty(),
        "target-dir" => c.target_dir.is_some(),
        "debug-image" => a.debug_image,
        "cargo.release" => c.release,
        "cargo.profile" => c.profile.is_some(),
        "cargo.all-features" => c.all_features,
        "cargo.no-default-features" => c.no_default_features,
        "cargo.locked" => c.locked,
        "cargo.offline" => c.offline,
        "cargo.frozen" => c.frozen,
        "cargo.auditable" => a.auditable,
        "image.base" => a.base.is_some(),
        "image.compression" => a.compression.is_some(),
        "release.sbom" => a.sbom.is_some(),
        "release.archives" => !a.archives.is_empty(),
        "release.provenance" => a.provenance,
        "release.attestations" => a.attestations.is_some(),
        "release.sign-key" => a.sign_key.is_some(),
        "release.split-debuginfo" => a.strip,
        "component" => !a.components.is_empty(),
        _ => false,
    }
}

/// The row key a `[variant.NAME]` key sets.
fn variant_key(k: &str) -> String {
    match k {
        "features" => "cargo.features".into(),
        "go-tags" => "go.tags".into(),
        "go-ldflags" => "go.ldflags".into(),
        "c-defines" => "c.defines".into(),
        "base" => "image.base".into(),
        "debug" => "debug-image".into(),
        _ if k.starts_with("env.") || k.starts_with("labels.") => format!("image.{k}"),
        _ => k.to_string(),
    }
}

/// Every key the project's config file writes, dotted (`image.env.APP_ENV`,
/// `variant.dev.go-tags`); arrays of tables (`[[component]]`) are not entered.
fn file_keys(project_dir: &Path) -> anyhow::Result<std::collections::BTreeSet<String>> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut std::collections::BTreeSet<String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if let toml::Value::Table(inner) = v {
                walk(&key, inner, out);
            }
            out.insert(key);
        }
    }
    let mut out = std::collections::BTreeSet::new();
    let kiln_toml = project_dir.join("kiln.toml");
    let cargo_toml = project_dir.join("Cargo.toml");
    let table: Option<toml::Table> = if kiln_toml.is_file() {
        toml::from_str(&fs_err::read_to_string(&kiln_toml)?).ok()
    } else if cargo_toml.is_file() {
        let v: Option<toml::Table> = toml::from_str(&fs_err::read_to_string(&cargo_toml)?).ok();
        v.and_then(|v| {
            ["package", "workspace"]
                .iter()
                .find_map(|s| v.get(*s)?.get("metadata")?.get("kiln")?.as_table().cloned())
        })
    } else {
        None
    };
    if let Some(t) = table {
        walk("", &t, &mut out);
    }
    Ok(out)
}

/// Every setting of `cfg` as `(key, value)` rows, keys named as in kiln.toml (cargo's as
/// its flags), in a fixed order.
fn config_rows(cfg: &BuildConfig) -> Vec<(String, Option<String>)> {
    let mut rows: Vec<(String, Option<String>)> = Vec::new();
    let mut set = |k: &str, v: Option<String>| rows.push((k.to_string(), v));
    let join = |v: &[String], sep: &str| (!v.is_empty()).then(|| v.join(sep));
    let flag = |b: bool| Some(b.to_string());
    // A row per item of a list that adds up across sources; one unset row when empty.
    let each = |set: &mut dyn FnMut(&str, Option<String>), k: &str, items: Vec<String>| {
        if items.is_empty() {
            set(k, None);
        }
        for x in items {
            set(k, Some(x));
        }
    };
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());

    set("project", Some(cfg.project_dir.display().to_string()));
    set("variant", cfg.variant.clone());
    let platforms: Vec<String> = cfg.targets.iter().map(|t| t.platform.to_string()).collect();
    set("platforms", join(&platforms, ","));
    set("output", join(&cfg.outputs, ","));
    set("docker-platform", cfg.docker_platform.clone());
    set("out-dir", Some(cfg.out_dir.display().to_string()));
    set("smoke", flag(cfg.smoke));
    set("smoke-args", join(&cfg.smoke_args, " "));
    set("jobs", cfg.jobs.map(|j| j.to_string()));
    set("bins", join(&cfg.bins, ","));
    set("target-dir", path(&cfg.target_dir));
    set("debug-image", flag(cfg.debug_image));

    let c = &cfg.cargo;
    set("cargo.release", flag(c.release));
    set("cargo.profile", c.profile.clone());
    set("cargo.packages", join(&c.packages, ","));
    each(&mut set, "cargo.features", c.features.clone());
    set("cargo.all-features", flag(c.all_features));
    set("cargo.no-default-features", flag(c.no_default_features));
    set("cargo.locked", flag(c.locked));
    set("cargo.offline", flag(c.offline));
    set("cargo.frozen", flag(c.frozen));
    set("cargo.manifest-path", path(&c.manifest_path));
    set("cargo.auditable", flag(c.auditable));

    let g = &cfg.go;
    set("go.packages", join(&g.packages, " "));
    each(&mut set, "go.tags", g.tags.clone());
    set("go.cgo", g.cgo.map(|b| b.to_string()));
    set("go.debug", flag(g.debug));
    set("go.buildvcs", flag(g.buildvcs));
    set("go.ldflags", g.ldflags.clone());
    set("go.version", g.version.clone());

    let cc = &cfg.c;
    set("c.name", cc.name.clone());
    set("c.version", cc.version.clone());
    set("c.build", cc.build.clone());
    set("c.output", cc.output.clone());
    set("c.cmake-args", join(&cc.cmake_args, " "));
    set("c.sources", join(&cc.sources, " "));
    set("c.include", join(&cc.include, " "));
    each(&mut set, "c.defines", cc.defines.clone());
    set("c.libs", join(&cc.libs, " "));
    set("c.opt", cc.opt.clone());
    set("c.debug", flag(cc.debug));
    set("c.cflags", join(&cc.cflags, " "));
    set("c.ldflags", join(&cc.ldflags, " "));
    let declared: Vec<String> = cc.components.iter().map(|d| d.name.clone()).collect();
    set("c.components", join(&declared, ","));

    let i = &cfg.image;
    set("image.name", i.name.clone());
    set("image.user", Some(i.user.clone()));
    set(
        "image.entrypoint",
        i.entrypoint.as_ref().map(|e| e.join(" ")),
    );
    set("image.cmd", join(&i.cmd, " "));
    if i.env.is_empty() {
        set("image.env", None);
    }
    for (k, v) in &i.env {
        set(&format!("image.env.{k}"), Some(v.clone()));
    }
    set("image.workdir", i.workdir.clone());
    if i.labels.is_empty() {
        set("image.labels", None);
    }
    for (k, v) in &i.labels {
        set(&format!("image.labels.{k}"), Some(v.clone()));
    }
    set("image.ports", join(&i.ports, ","));
    set("image.stop-signal", i.stop_signal.clone());
    set("image.bin-dir", Some(i.bin_dir.clone()));
    set("image.base", Some(base_name(&i.base)));
    set(
        "image.compression",
        Some(format!("{:?}", i.compression).to_lowercase()),
    );
    let files = i
        .files
        .iter()
        .map(|f| format!("{} -> {}", f.src.display(), f.dst));
    each(&mut set, "image.files", files.collect());

    let r = &cfg.release;
    set(
        "release.sbom",
        Some(
            r.sbom
                .map_or("none".into(), |s| format!("{s:?}").to_lowercase()),
        ),
    );
    let mut archives = Vec::new();
    if r.archives.tar_gz {
        archives.push("tar.gz".to_string());
    }
    if r.archives.zip {
        archives.push("zip".to_string());
    }
    set("release.archives", join(&archives, ","));
    set("release.provenance", flag(r.provenance));
    set(
        "release.attestations",
        r.attestations.map(|a| format!("{a:?}").to_lowercase()),
    );
    set(
        "release.sign-key",
        r.sign_key.as_ref().map(|k| format!("keyid {}", k.keyid)),
    );
    set("release.split-debuginfo", flag(r.strip));

    for (n, t) in cfg.components.iter().enumerate() {
        let name = t
            .name
            .clone()
            .or_else(|| {
                t.path
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| (n + 1).to_string());
        let mut c = |k: &str, v: Option<String>| set(&format!("component.{name}.{k}"), v);
        c("path", path(&t.path));
        c("build", t.build.clone());
        c("output", path(&t.output));
        c("dst", t.dst.clone());
        c("platform-independent", flag(t.platform_independent));
        c("needs", join(&t.needs, ","));
        c("features", join(&t.features, ","));
        c("bins", join(&t.bins, ","));
        c("smoke-args", t.smoke_args.as_ref().map(|a| a.join(" ")));
    }
    set("component", join(&cfg.only_components, ","));
    set("variants", join(&cfg.variant_names, ","));
    rows
}

/// The base as the user names it.
fn base_name(base: &crate::oci::Base) -> String {
    use crate::oci::{Base, distroless::DistrolessSource};
    match base {
        Base::Scratch => "scratch".into(),
        Base::Distroless(DistrolessSource::Debs { .. }) => "distroless".into(),
        Base::Distroless(DistrolessSource::Host) => "distroless (from this machine)".into(),
        Base::Image(r) => r.clone(),
    }
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

/// `--sbom`, `--archive`, `--provenance` over `[release]`; SBOMs default to SPDX when an
/// image or an archive is written, provenance is on with an image.
fn resolve_release(
    args: &BuildArgs,
    file: FileRelease,
    outputs: &[String],
) -> anyhow::Result<ReleaseConfig> {
    use crate::attest::{ArchiveKind, SbomFormat, outputs::Archives};
    use clap::ValueEnum;
    let mut kinds = args.archives.clone();
    if kinds.is_empty() {
        for a in &file.archives {
            kinds.push(ArchiveKind::from_str(a, false).map_err(|_| {
                UsageError(format!("[release] archives: `{a}` is not tar.gz or zip"))
            })?);
        }
    }
    let archives = Archives {
        tar_gz: kinds.contains(&ArchiveKind::TarGz),
        zip: kinds.contains(&ArchiveKind::Zip),
    };
    let sbom = match (args.sbom, &file.sbom) {
        (Some(s), _) => s,
        (None, Some(s)) => SbomFormat::from_str(s, false).map_err(|_| {
            UsageError(format!(
                "[release] sbom: `{s}` is not spdx, cyclonedx, both or none"
            ))
        })?,
        (None, None) if !outputs.is_empty() || archives != Archives::default() => SbomFormat::Spdx,
        (None, None) => SbomFormat::None,
    };
    let attestations = match (args.attestations, &file.attestations) {
        (Some(a), _) => Some(a),
        (None, Some(s)) => Some(
            crate::attest::Attestations::from_str(s, false).map_err(|_| {
                UsageError(format!(
                    "[release] attestations: `{s}` is not referrers or none"
                ))
            })?,
        ),
        (None, None) => None,
    };
    let sign_key = args
        .sign_key
        .as_deref()
        .map(crate::attest::sign::SigningKey::load)
        .transpose()?;
    let provenance = args.provenance || file.provenance.unwrap_or(!outputs.is_empty());
    if sign_key.is_some() && !provenance && sbom == SbomFormat::None {
        return Err(UsageError(
            "--sign-key signs provenance and SBOMs, and neither is written: add --provenance or --sbom, or an image output".into(),
        )
        .into());
    }
    Ok(ReleaseConfig {
        sbom: (sbom != SbomFormat::None).then_some(sbom),
        archives,
        provenance,
        command: std::env::args().collect(),
        attestations,
        sign_key,
        strip: args.strip || file.split_debuginfo.unwrap_or(false),
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
