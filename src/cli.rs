//! What the user typed: clap types only. Resolution (files, environment, defaults) is in
//! `config.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Static Linux binaries for many CPU architectures, verified, packed into reproducible multi-platform OCI images",
    propagate_version = true
)]
pub struct Cli {
    /// More output: -v logs every command kiln runs, -vv also shows their stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print only errors and the final result.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// `human` (default) or `json`: one JSON object per line for each artifact, image and index.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human, global = true)]
    pub message_format: MessageFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
pub enum Command {
    /// Build static binaries for each platform, verify them, and pack images.
    Build(BuildArgs),
    /// Report linkage, architecture, interpreter and needed libraries of ELF files.
    Inspect(InspectArgs),
    /// Check which toolchains and tools are present; exit 4 if a required one is missing.
    Doctor(DoctorArgs),
    /// Install toolchains kiln manages.
    #[command(subcommand)]
    Toolchain(ToolchainCommand),
    /// List the platforms kiln knows.
    Targets,
    /// (internal) the C compiler / linker wrapper: rewrites arguments and runs zig.
    #[command(hide = true)]
    ZigCc(ZigCcArgs),
}

/// Cargo's own flags, passed through to every `cargo build`.
///
/// Not `cargo_options::Build`: that struct also defines `--target`, `--message-format` and
/// `--quiet`, which kiln owns with other meanings.
#[derive(Debug, Clone, Default, Args)]
pub struct CargoFlags {
    /// Build with the release profile.
    #[arg(short = 'r', long)]
    pub release: bool,
    /// Build with the given profile.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Package(s) to build.
    #[arg(short = 'p', long = "package", value_name = "SPEC")]
    pub packages: Vec<String>,
    /// Binary target(s) to build (default: every binary of the selected packages).
    #[arg(long = "bin", value_name = "NAME")]
    pub bins: Vec<String>,
    /// Features to activate (space- or comma-separated).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub features: Vec<String>,
    /// Activate all features.
    #[arg(long)]
    pub all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long)]
    pub no_default_features: bool,
    /// Require Cargo.lock to be up to date.
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network.
    #[arg(long)]
    pub offline: bool,
    /// Require Cargo.lock and cache are up to date.
    #[arg(long)]
    pub frozen: bool,
    /// Directory for all generated artifacts (kiln uses `<dir>/kiln/<target>` per platform).
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct BuildArgs {
    /// Project directory (default: the current directory).
    pub path: Option<PathBuf>,
    /// Platforms, comma-separated or repeated: linux/amd64, linux/arm64, linux/arm/v7, short
    /// names (amd64, arm64, armv7) or `all`. Default: config, else linux/amd64,linux/arm64.
    #[arg(long = "platform", value_name = "PLATFORMS")]
    pub platforms: Vec<String>,
    /// Where to write the image: oci:DIR[:TAG], oci-archive:FILE[:TAG],
    /// docker-archive:FILE[:REPO:TAG]. Repeatable. Default: config, else no image.
    #[arg(long = "output", short = 'o', value_name = "DEST")]
    pub outputs: Vec<String>,
    /// Where binaries are copied: `<out-dir>/<os>-<arch>[-<variant>]/<name>`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Run every built binary once (foreign ones under qemu-user); fail if one exits non-zero.
    #[arg(long)]
    pub smoke: bool,
    /// Arguments for the smoke run (default: from config, else none).
    #[arg(long = "smoke-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub smoke_args: Vec<String>,
    /// Image base: scratch (default), oci:DIR[:TAG], oci-archive:FILE[:TAG].
    #[arg(long, value_name = "BASE")]
    pub base: Option<String>,
    /// Layer compression: gzip (default), zstd, none.
    #[arg(long, value_name = "KIND")]
    pub compression: Option<String>,
    /// Parallel target builds (default: config, else one per target, at most 4).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub cargo: CargoFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Require {
    /// Static or static-pie.
    #[default]
    Static,
    /// Static-pie only.
    StaticPie,
    /// Anything (report only).
    Any,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Files or directories to inspect.
    #[arg(required = true, value_name = "FILE")]
    pub paths: Vec<PathBuf>,
    /// What linkage passes: static (accepts static-pie), static-pie, any.
    #[arg(long, value_enum, default_value_t = Require::Static)]
    pub require: Require,
    /// Require this platform's architecture (linux/arm64, armv7, ...).
    #[arg(long, value_name = "PLATFORM")]
    pub arch: Option<String>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Platforms whose toolchains to check (default: linux/amd64,linux/arm64).
    #[arg(long = "platform", value_name = "PLATFORMS")]
    pub platforms: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ToolchainCommand {
    /// Install a toolchain: `zig` (the ziglang wheel, into kiln's cache).
    Install {
        /// What to install: zig.
        what: String,
    },
    /// Print the zig kiln would use.
    Which {
        /// zig
        what: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ZigMode {
    Cc,
    Cxx,
    Ar,
    Ranlib,
}

#[derive(Debug, Args)]
pub struct ZigCcArgs {
    /// The zig executable.
    #[arg(long)]
    pub zig: PathBuf,
    /// zig target triple.
    #[arg(long)]
    pub target: String,
    /// -mcpu value.
    #[arg(long)]
    pub cpu: Option<String>,
    #[arg(long, value_enum)]
    pub mode: ZigMode,
    /// The arguments the build tool passed.
    #[arg(last = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}
