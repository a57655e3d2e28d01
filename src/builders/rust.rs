//! The Rust builder: cargo_metadata finds the binaries; one `cargo build` for all targets
//! that share a toolchain ([`rust_group`]), zig (through kiln's wrapper, per target) as C
//! compiler and linker, and the std from rustup or `+nightly -Zbuild-std`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cargo_metadata::{Metadata, MetadataCommand};

use crate::builders::PackageInfo;
use crate::config::CargoConfig;
use crate::error::UsageError;
use crate::exec::Cmd;
use crate::target::Target;
use crate::toolchain::{RustPlan, Wrappers};

/// One target of a Rust build with its wrappers.
#[derive(Debug, Clone)]
pub struct Member {
    pub target: Target,
    pub wrappers: Wrappers,
}

/// What `plan` found in a cargo project.
#[derive(Debug, Clone)]
pub struct RustProject {
    pub manifest_path: PathBuf,
    /// The workspace target directory (kiln builds under `<it>/kiln/cargo`).
    pub target_dir: PathBuf,
    /// Binary names to build.
    pub bins: Vec<String>,
    /// Package name, version, description, license, repository of the first selected
    /// package (for image annotations).
    pub package: Option<PackageInfo>,
}

/// `$CARGO` (set when kiln runs as `cargo kiln`), else `cargo`.
pub fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// The manifest kiln will build.
pub fn manifest_path(project_dir: &Path, flags: &CargoConfig) -> PathBuf {
    flags
        .manifest_path
        .clone()
        .unwrap_or_else(|| project_dir.join("Cargo.toml"))
}

/// Whether `dir` is a cargo project.
pub fn detect(project_dir: &Path, flags: &CargoConfig) -> bool {
    manifest_path(project_dir, flags).is_file()
}

/// Read the project with `cargo metadata` and pick the binaries to build (`bins`, default
/// all); `target_dir` overrides the workspace's.
pub fn plan(
    project_dir: &Path,
    flags: &CargoConfig,
    bins: &[String],
    target_dir: Option<PathBuf>,
) -> anyhow::Result<RustProject> {
    let manifest = manifest_path(project_dir, flags);
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo_program())
        .manifest_path(&manifest)
        .no_deps();
    let mut other = Vec::new();
    if flags.locked {
        other.push("--locked".to_string());
    }
    if flags.offline {
        other.push("--offline".to_string());
    }
    if flags.frozen {
        other.push("--frozen".to_string());
    }
    cmd.other_options(other);
    let meta: Metadata = cmd.exec().with_context(|| {
        format!(
            "reading the cargo project at {} (`cargo metadata` failed; does `cargo build` work there?)",
            manifest.display()
        )
    })?;
    select_bins(&meta, flags, bins, target_dir)
}

/// Pick the packages and binaries from metadata (pure, for tests).
pub fn select_bins(
    meta: &Metadata,
    flags: &CargoConfig,
    wanted_bins: &[String],
    target_dir: Option<PathBuf>,
) -> anyhow::Result<RustProject> {
    let members: Vec<&cargo_metadata::Package> = meta.workspace_packages();
    let selected: Vec<&cargo_metadata::Package> = if flags.packages.is_empty() {
        let defaults: BTreeSet<_> = meta.workspace_default_members.iter().collect();
        let d: Vec<_> = members
            .iter()
            .copied()
            .filter(|p| defaults.contains(&p.id))
            .collect();
        if d.is_empty() { members.clone() } else { d }
    } else {
        let mut out = Vec::new();
        for spec in &flags.packages {
            match members.iter().find(|p| p.name.as_str() == spec) {
                Some(p) => out.push(*p),
                None => {
                    return Err(UsageError(format!(
                        "package `{spec}` is not in this workspace; members: {}",
                        members
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .into());
                }
            }
        }
        out
    };
    let mut bins: Vec<String> = Vec::new();
    for p in &selected {
        for t in &p.targets {
            if t.is_bin() && !bins.contains(&t.name) {
                bins.push(t.name.clone());
            }
        }
    }
    if !wanted_bins.is_empty() {
        for b in wanted_bins {
            if !bins.contains(b) {
                return Err(UsageError(format!(
                    "no binary `{b}` in the selected packages; binaries: {}",
                    if bins.is_empty() {
                        "none".to_string()
                    } else {
                        bins.join(", ")
                    }
                ))
                .into());
            }
        }
        bins = wanted_bins.to_vec();
    }
    if bins.is_empty() {
        return Err(UsageError(format!(
            "{} has no binary target: kiln builds executables. Add a src/main.rs or a [[bin]] section.",
            meta.workspace_root
        ))
        .into());
    }
    let package = selected.first().map(|p| PackageInfo {
        name: p.name.to_string(),
        version: p.version.to_string(),
        description: p.description.clone(),
        license: p.license.clone(),
        repository: p.repository.clone(),
    });
    Ok(RustProject {
        manifest_path: selected
            .first()
            .map(|p| p.manifest_path.clone().into_std_path_buf())
            .unwrap_or_default(),
        target_dir: target_dir.unwrap_or_else(|| meta.target_directory.clone().into_std_path_buf()),
        bins,
        package,
    })
}

/// The `cargo build` command for `members` (one `--target` each), all built with `plan`'s
/// toolchain into `target_dir`.
pub fn build_command(
    project: &RustProject,
    manifest: &Path,
    flags: &CargoConfig,
    plan: &RustPlan,
    members: &[Member],
    target_dir: &Path,
) -> Cmd {
    let platforms: Vec<String> = members
        .iter()
        .map(|m| m.target.platform.to_string())
        .collect();
    let summary = format!(
        "build {} for {}",
        project.bins.join(", "),
        platforms.join(", ")
    );
    let mut cmd = match &plan.toolchain {
        // `$CARGO` is a toolchain's own cargo and takes no `+nightly`; rustup picks the
        // toolchain instead.
        Some(tc) => Cmd::new(
            crate::toolchain::rustup().unwrap_or_else(|| PathBuf::from("rustup")),
            summary,
        )
        .args(["run", tc, "cargo"])
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN"),
        None => Cmd::new(cargo_program(), summary),
    };
    if flags.auditable {
        // cargo-auditable wraps rustc to link the dependency list into each binary.
        cmd = cmd.arg("auditable");
    }
    cmd = cmd.arg("build").arg("--manifest-path").arg(manifest);
    for m in members {
        cmd = cmd.args(["--target", &m.target.rust_triple]);
    }
    cmd = cmd
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--message-format=json-render-diagnostics");
    if plan.build_std {
        cmd = cmd.arg("-Zbuild-std=std,panic_abort");
    }
    if flags.release {
        cmd = cmd.arg("--release");
    }
    if let Some(p) = &flags.profile {
        cmd = cmd.args(["--profile", p]);
    }
    for p in &flags.packages {
        cmd = cmd.args(["--package", p]);
    }
    for b in &project.bins {
        cmd = cmd.args(["--bin", b]);
    }
    for f in &flags.features {
        cmd = cmd.args(["--features", f]);
    }
    if flags.all_features {
        cmd = cmd.arg("--all-features");
    }
    if flags.no_default_features {
        cmd = cmd.arg("--no-default-features");
    }
    if flags.locked {
        cmd = cmd.arg("--locked");
    }
    if flags.offline {
        cmd = cmd.arg("--offline");
    }
    if flags.frozen {
        cmd = cmd.arg("--frozen");
    }
    for m in members {
        for (k, v) in toolchain_env(&m.target, &m.wrappers, |k| std::env::var_os(k)) {
            cmd = cmd.env(k, v);
        }
    }
    // The user's RUSTFLAGS went into each target's own variable (see `toolchain_env`);
    // left in place it would hide those from cargo.
    if std::env::var_os("RUSTFLAGS").is_some()
        && std::env::var_os("CARGO_ENCODED_RUSTFLAGS").is_none()
    {
        cmd = cmd.env_remove("RUSTFLAGS");
    }
    // cargo joins kiln's jobserver: all targets' compiler jobs share the CPUs.
    cmd.jobserver()
}

/// What rustc must be told for zig to link: rustc's own crt objects and libunwind search
/// path stay out (zig brings its own), and musl is linked statically.
pub const RUSTFLAGS: &str = "-C link-self-contained=no -C target-feature=+crt-static";

/// The environment for one target's cargo build. Variables the user already set win; `get`
/// reads the user's environment (a parameter so tests can give their own).
pub fn toolchain_env(
    target: &Target,
    wrappers: &Wrappers,
    get: impl Fn(&str) -> Option<OsString>,
) -> Vec<(String, OsString)> {
    let triple_us = target.rust_triple.replace('-', "_");
    let t_env = target.rust_triple_env();
    let mut env: Vec<(String, OsString)> = Vec::new();
    let mut set_unless_user = |k: String, v: OsString| {
        if get(&k).is_none() {
            env.push((k, v));
        }
    };
    set_unless_user(format!("CC_{triple_us}"), wrappers.cc.clone().into());
    set_unless_user(format!("CXX_{triple_us}"), wrappers.cxx.clone().into());
    set_unless_user(format!("AR_{triple_us}"), wrappers.ar.clone().into());
    set_unless_user(
        format!("RANLIB_{triple_us}"),
        wrappers.ranlib.clone().into(),
    );
    set_unless_user(
        format!("CARGO_TARGET_{t_env}_LINKER"),
        wrappers.cc.clone().into(),
    );
    let ours = match &target.rust_flags {
        Some(extra) => format!("{RUSTFLAGS} {extra}"),
        None => RUSTFLAGS.to_string(),
    };
    // RUSTFLAGS, when the user set it, hides target rustflags from cargo, and in a
    // multi-target build it would give every target the others' flags. With `--target` it
    // applies to target code only, exactly as the per-target variable does, so it moves
    // there (the caller unsets it), after ours so that theirs still win.
    let key = format!("CARGO_TARGET_{t_env}_RUSTFLAGS");
    if get("CARGO_ENCODED_RUSTFLAGS").is_some() {
        // The user took full control; leave it.
    } else if let Some(user) = get("RUSTFLAGS") {
        let mut v = OsString::from(&ours);
        v.push(" ");
        v.push(user);
        env.push((key, v));
    } else {
        match get(&key) {
            Some(user) => {
                let mut v = OsString::from(&ours);
                v.push(" ");
                v.push(user);
                env.push((key, v));
            }
            None => env.push((key, ours.into())),
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Targets;

    fn wrappers() -> Wrappers {
        Wrappers {
            cc: "/w/cc".into(),
            cxx: "/w/cxx".into(),
            ar: "/w/ar".into(),
            ranlib: "/w/ranlib".into(),
        }
    }

    fn arm64() -> Target {
        Targets::builtin().find("arm64").unwrap().clone()
    }

    #[test]
    fn env_sets_wrappers_and_rustflags() {
        let env = toolchain_env(&arm64(), &wrappers(), |_| None);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("CC_aarch64_unknown_linux_musl").unwrap(), "/w/cc");
        assert_eq!(get("CXX_aarch64_unknown_linux_musl").unwrap(), "/w/cxx");
        assert_eq!(
            get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER").unwrap(),
            "/w/cc"
        );
        assert_eq!(
            get("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS").unwrap(),
            RUSTFLAGS
        );
        assert!(get("RUSTFLAGS").is_none());
    }

    #[test]
    fn target_rust_flags_come_before_the_users() {
        let t = Targets::builtin().find("loong64").unwrap().clone();
        let env = toolchain_env(&t, &wrappers(), |_| None);
        let (_, v) = env
            .iter()
            .find(|(k, _)| k == "CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS")
            .unwrap();
        assert_eq!(v, format!("{RUSTFLAGS} -C target-feature=-lsx").as_str());
        let env = toolchain_env(&t, &wrappers(), |k| {
            (k == "RUSTFLAGS").then(|| "-C target-feature=+lsx".into())
        });
        // The user's RUSTFLAGS move into the target's own variable, after ours.
        assert!(env.iter().all(|(k, _)| k != "RUSTFLAGS"));
        let (_, v) = env
            .iter()
            .find(|(k, _)| k == "CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS")
            .unwrap();
        assert_eq!(
            v,
            format!("{RUSTFLAGS} -C target-feature=-lsx -C target-feature=+lsx").as_str()
        );
    }

    #[test]
    fn user_environment_wins() {
        let env = toolchain_env(&arm64(), &wrappers(), |k| match k {
            "CC_aarch64_unknown_linux_musl" => Some("my-cc".into()),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER" => Some("my-ld".into()),
            "RUSTFLAGS" => Some("-C opt-level=s".into()),
            _ => None,
        });
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(!names.contains(&"CC_aarch64_unknown_linux_musl"));
        assert!(!names.contains(&"CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER"));
        let rf = env
            .iter()
            .find(|(k, _)| k == "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS")
            .unwrap();
        assert_eq!(rf.1, format!("{RUSTFLAGS} -C opt-level=s").as_str());
        let encoded = toolchain_env(&arm64(), &wrappers(), |k| {
            (k == "CARGO_ENCODED_RUSTFLAGS").then(|| "-Cfoo".into())
        });
        assert!(encoded.iter().all(|(k, _)| !k.contains("RUSTFLAGS")));
    }

    /// A one-binary project at /p, as `plan` would find it.
    fn hello_project() -> RustProject {
        RustProject {
            manifest_path: "/p/Cargo.toml".into(),
            target_dir: "/p/target".into(),
            bins: vec!["hello".into()],
            package: None,
        }
    }

    fn member(name: &str) -> Member {
        Member {
            target: Targets::builtin().find(name).unwrap().clone(),
            wrappers: wrappers(),
        }
    }

    #[test]
    fn one_command_builds_several_targets_each_with_its_own_tools() {
        let project = hello_project();
        let plan = RustPlan {
            toolchain: None,
            build_std: false,
        };
        let members = [member("amd64"), member("arm64")];
        let cmd = build_command(
            &project,
            Path::new("/p/Cargo.toml"),
            &CargoConfig::default(),
            &plan,
            &members,
            Path::new("/p/target/kiln/cargo"),
        );
        let line = cmd.command_line();
        assert!(
            line.contains(
                "--target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl --target-dir /p/target/kiln/cargo"
            ),
            "{line}"
        );
        assert_eq!(cmd.summary(), "build hello for linux/amd64, linux/arm64");
        for var in [
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER",
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER",
            "CC_x86_64_unknown_linux_musl",
            "CC_aarch64_unknown_linux_musl",
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
        ] {
            assert!(line.contains(&format!("{var}=")), "{var} in {line}");
        }
    }

    #[test]
    fn build_std_targets_use_nightly_through_rustup() {
        let project = hello_project();
        let plan = RustPlan {
            toolchain: Some("nightly".into()),
            build_std: true,
        };
        let flags = CargoConfig {
            release: true,
            features: vec!["a b".into()],
            ..Default::default()
        };
        let cmd = build_command(
            &project,
            Path::new("/p/Cargo.toml"),
            &flags,
            &plan,
            &[member("armv7")],
            Path::new("/p/target/kiln/cargo-nightly"),
        );
        let line = cmd.command_line();
        assert!(line.contains(" run nightly cargo build "), "{line}");
        assert!(line.contains("-Zbuild-std=std,panic_abort"), "{line}");
        assert!(
            line.contains("--target armv7-unknown-linux-musleabihf"),
            "{line}"
        );
        assert!(
            line.contains("--target-dir /p/target/kiln/cargo-nightly"),
            "{line}"
        );
        assert!(
            line.contains("--release --bin hello --features 'a b'"),
            "{line}"
        );
    }
}
