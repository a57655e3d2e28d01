//! The Rust builder: cargo_metadata finds the binaries; one `cargo build` for all targets
//! that share a toolchain ([`rust_group`]), zig (through kiln's wrapper, per target) as C
//! compiler and linker, and the std from rustup or `+nightly -Zbuild-std`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cargo_metadata::{Metadata, MetadataCommand};

use crate::builders::PackageInfo;
use crate::builders::answers::{self, Answers, Watch};
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

/// Where the answers a Rust build asks before cargo runs are kept ([`Answers::for_build`]).
pub const PLAN_ANSWERS: &str = "plan-answers";

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

/// Read the project with `cargo metadata --no-deps` and pick the binaries to build (`bins`,
/// default all); `target_dir` overrides the workspace's. The answer is kept in
/// `answers` ([`metadata_inputs`] says what it depends on); `sysroot` (the toolchain rustc
/// names, when known) is part of its key: a toolchain updated in place asks again.
pub fn plan(
    project_dir: &Path,
    flags: &CargoConfig,
    bins: &[String],
    target_dir: Option<PathBuf>,
    answers: &Answers,
    sysroot: Option<&Path>,
) -> anyhow::Result<RustProject> {
    let manifest = manifest_path(project_dir, flags);
    let manifest = std::path::absolute(&manifest).unwrap_or(manifest);
    let mut cmd = Cmd::new(cargo_program(), "read the cargo project")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .arg("--manifest-path")
        .arg(&manifest);
    if flags.locked {
        cmd = cmd.arg("--locked");
    }
    if flags.offline {
        cmd = cmd.arg("--offline");
    }
    if flags.frozen {
        cmd = cmd.arg("--frozen");
    }
    let toolchain_files: Vec<PathBuf> = sysroot
        .map(|s| vec![s.join("bin").join("cargo"), s.join("bin").join("rustc")])
        .unwrap_or_default();
    let files: Vec<&Path> = toolchain_files.iter().map(PathBuf::as_path).collect();
    let key = answers::toolchain_key("cargo metadata --no-deps", &cmd, &[], &files);
    let kept = answers
        .get(&key)
        .and_then(|json| MetadataCommand::parse(json).ok());
    let meta: Metadata = match kept {
        Some(meta) => meta,
        None => {
            let asked = std::time::SystemTime::now();
            let json = cmd.read().map_err(anyhow::Error::from).with_context(|| {
                format!(
                    "reading the cargo project at {} (`cargo metadata` failed; does `cargo build` work there?)",
                    manifest.display()
                )
            })?;
            let meta = MetadataCommand::parse(&json)
                .with_context(|| format!("reading `cargo metadata` of {}", manifest.display()))?;
            answers.put(&key, &metadata_inputs(&cmd, &meta, &manifest), asked, &json);
            meta
        }
    };
    select_bins(&meta, flags, bins, target_dir)
}

/// What a `cargo metadata --no-deps` answer depends on besides its command, the
/// environment and the toolchain: the choice of toolchain ([`answers::toolchain_inputs`]),
/// cargo's config files, every workspace manifest and Cargo.lock by content; whether a
/// `Cargo.toml` exists above the workspace root (cargo looks there for a workspace);
/// each package's `build.rs`, `src/main.rs`, `src/lib.rs` (by presence), `src/bin` and
/// its subdirectories (by listing: the binaries cargo finds on its own); the directories
/// between the workspace root and each member, and the fixed part of each `members` glob
/// (by listing: a new directory may be a new member).
pub fn metadata_inputs(cmd: &Cmd, meta: &Metadata, manifest: &Path) -> Vec<(PathBuf, Watch)> {
    let root = meta.workspace_root.as_std_path();
    let manifest_dir = manifest.parent().unwrap_or(root);
    let mut out = answers::toolchain_inputs(cmd, &[manifest_dir, root]);
    out.extend(answers::cargo_config_inputs(cmd, &[manifest_dir, root]));
    let mut push = |p: PathBuf, w: Watch| {
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, w));
        }
    };
    push(manifest.to_path_buf(), Watch::Content);
    push(root.join("Cargo.toml"), Watch::Content);
    push(root.join("Cargo.lock"), Watch::Content);
    for a in root.ancestors().skip(1).chain(manifest_dir.ancestors()) {
        push(a.join("Cargo.toml"), Watch::Content);
    }
    for p in meta.workspace_packages() {
        let m = p.manifest_path.as_std_path();
        push(m.to_path_buf(), Watch::Content);
        let Some(dir) = m.parent() else { continue };
        for f in ["build.rs", "src/main.rs", "src/lib.rs"] {
            push(dir.join(f), Watch::Presence);
        }
        let bin = dir.join("src").join("bin");
        push(bin.clone(), Watch::Listing);
        for e in std::fs::read_dir(&bin).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                push(e.path(), Watch::Listing);
            }
        }
        for a in dir.ancestors().skip(1) {
            if !a.starts_with(root) {
                break;
            }
            push(a.to_path_buf(), Watch::Listing);
        }
    }
    for glob in member_globs(&root.join("Cargo.toml")) {
        let fixed: PathBuf = Path::new(&glob)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        let mut d = root.join(fixed);
        loop {
            push(d.clone(), Watch::Listing);
            if d == root || !d.pop() {
                break;
            }
        }
    }
    out
}

/// The `workspace.members` patterns of a manifest that are globs.
fn member_globs(manifest: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return Vec::new();
    };
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    doc.get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .filter(|m| m.contains(['*', '?', '[']))
        .map(str::to_string)
        .collect()
}

/// The sysroot of the toolchain `rustc` (`$RUSTC`, else from PATH) runs, with
/// `+toolchain`; kept in `answers` with the files that choose rustup's toolchain
/// ([`answers::toolchain_inputs`] of `project_dir`), and asked again when it no longer
/// holds `bin/rustc`. None when rustc cannot say.
pub fn sysroot(toolchain: Option<&str>, project_dir: &Path, answers: &Answers) -> Option<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Cmd::new(rustc, "find the Rust sysroot");
    if let Some(t) = toolchain {
        cmd = cmd.arg(format!("+{t}"));
    }
    sysroot_of(cmd.args(["--print", "sysroot"]), project_dir, answers)
}

/// [`sysroot`] with the command given.
fn sysroot_of(cmd: Cmd, project_dir: &Path, answers: &Answers) -> Option<PathBuf> {
    let key = answers::toolchain_key("rust sysroot", &cmd, &[project_dir], &[]);
    if let Some(kept) = answers.get(&key) {
        return Some(PathBuf::from(kept));
    }
    let asked = std::time::SystemTime::now();
    let answer = cmd.read().ok().filter(|s| !s.is_empty())?;
    let root = PathBuf::from(&answer);
    let mut inputs = answers::toolchain_inputs(&cmd, &[project_dir]);
    inputs.push((root.join("bin").join("rustc"), Watch::Presence));
    answers.put(&key, &inputs, asked, &answer);
    Some(root)
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

    /// The sysroot is kept, and a `rust-toolchain.toml` that switches between stable and
    /// nightly is seen at once (a kept answer that missed it would name the old toolchain).
    #[test]
    fn the_kept_sysroot_follows_rust_toolchain_toml() {
        let dir = tempfile::tempdir().unwrap();
        let answers = Answers::in_dir(dir.path().join("answers"));
        // Run in the project as a user would; cargo's test run sets RUSTUP_TOOLCHAIN, which
        // would win over the file.
        let ask = || {
            Cmd::new("rustc", "test")
                .env_remove("RUSTUP_TOOLCHAIN")
                .dir(dir.path())
                .args(["--print", "sysroot"])
        };
        let real = |tc: &str| {
            Cmd::new("rustc", "test")
                .arg(format!("+{tc}"))
                .args(["--print", "sysroot"])
                .read()
                .ok()
                .map(PathBuf::from)
        };
        let (Some(stable), Some(nightly)) = (real("stable"), real("nightly")) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "rustup with stable and nightly is installed by `cargo xtask setup`"
            );
            eprintln!("skipped: rustup's stable and nightly are needed");
            return;
        };
        let toolchain = dir.path().join("rust-toolchain.toml");
        std::fs::write(&toolchain, "[toolchain]\nchannel = \"stable\"\n").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let set_old = || {
            std::fs::File::options()
                .write(true)
                .open(&toolchain)
                .unwrap()
                .set_modified(old)
                .unwrap()
        };
        set_old();
        assert_eq!(
            sysroot_of(ask(), dir.path(), &answers),
            Some(stable.clone())
        );
        let kept = std::fs::read_dir(dir.path().join("answers"))
            .unwrap()
            .count();
        assert_eq!(kept, 1, "the answer is kept");
        assert_eq!(
            sysroot_of(ask(), dir.path(), &answers),
            Some(stable.clone())
        );
        std::fs::write(&toolchain, "[toolchain]\nchannel = \"nightly\"\n").unwrap();
        set_old();
        assert_eq!(
            sysroot_of(ask(), dir.path(), &answers),
            Some(nightly.clone())
        );
        assert_eq!(sysroot_of(ask(), dir.path(), &answers), Some(nightly));
        std::fs::remove_file(&toolchain).unwrap();
        let default = ask().read().ok().map(PathBuf::from);
        assert_eq!(sysroot_of(ask(), dir.path(), &answers), default);
    }
}
