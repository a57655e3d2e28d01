//! The config file as written: `kiln.toml`, or `[package.metadata.kiln]` in Cargo.toml.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::UsageError;

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
    /// `referrers`, `buildkit` or `none`: attach SBOMs and provenance to images.
    pub attestations: Option<String>,
    /// Strip the binaries and keep their debug info in `<name>.debug` files.
    pub split_debuginfo: Option<bool>,
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
