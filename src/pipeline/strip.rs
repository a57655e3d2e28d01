//! `--strip` / `[release] split-debuginfo`: each built binary's debug info goes to
//! `<name>.debug` beside it (`objcopy --only-keep-debug`), and the binary itself is
//! stripped of symbols and debug info and given a `.gnu_debuglink` naming that file (its
//! build-id note, when the linker wrote one, stays in both), so the image and archives
//! ship the small binary and a debugger finds the symbols later. llvm-objcopy handles
//! every architecture kiln builds; GNU objcopy on the build machine usually does not.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::builders::answers::Answers;
use crate::builders::{Artifact, rust};
use crate::config::BuildConfig;
use crate::error::ToolchainMissing;
use crate::exec::Cmd;
use crate::progress::Progress;

/// `$KILN_OBJCOPY`, else `llvm-objcopy` on PATH, else rustup's `rust-objcopy` (the
/// llvm-tools component) in the Rust sysroot `sysroot` finds (asked only then).
pub fn find_objcopy(
    sysroot: impl FnOnce() -> Option<PathBuf>,
) -> Result<PathBuf, ToolchainMissing> {
    if let Some(p) = std::env::var_os("KILN_OBJCOPY").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Ok(p) = which::which("llvm-objcopy") {
        return Ok(p);
    }
    if let Some(p) = sysroot().and_then(|root| objcopy_in_sysroot(&root)) {
        return Ok(p);
    }
    Err(ToolchainMissing {
        what: "llvm-objcopy (for --strip)".into(),
        install:
            "run `apt-get install llvm` or `rustup component add llvm-tools`, or set KILN_OBJCOPY"
                .into(),
    })
}

/// An objcopy of the Rust sysroot `root` that can run: llvm-tools' `llvm-objcopy`, else
/// the `rust-objcopy` rustc ships, but only beside the LLVM library it loads (rustc's own
/// copy finds it only once llvm-tools put it there; without, it exits 127 for want of
/// `libLLVM`).
fn objcopy_in_sysroot(root: &Path) -> Option<PathBuf> {
    let hosts = std::fs::read_dir(root.join("lib/rustlib")).ok()?;
    let bins: Vec<PathBuf> = hosts.flatten().map(|e| e.path().join("bin")).collect();
    let llvm_beside = |bin: &Path| {
        std::fs::read_dir(bin.join("../lib")).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libLLVM"))
        })
    };
    ["llvm-objcopy", "rust-objcopy"].iter().find_map(|name| {
        bins.iter()
            .find(|bin| bin.join(name).is_file() && llvm_beside(bin))
            .map(|bin| bin.join(name))
    })
}

/// `<path>.debug`.
pub fn debug_path(binary: &Path) -> PathBuf {
    let mut p = binary.as_os_str().to_owned();
    p.push(".debug");
    PathBuf::from(p)
}

/// Split and strip every artifact that has symbols or debug info; its sha256, size and
/// report then describe the stripped binary. Returns the debug files written.
pub fn split_debuginfo(
    cfg: &BuildConfig,
    artifacts: &mut [Artifact],
    progress: &Progress,
) -> anyhow::Result<Vec<PathBuf>> {
    let todo: Vec<usize> = (0..artifacts.len())
        .filter(|&i| !artifacts[i].report.stripped || artifacts[i].report.debug_info)
        .collect();
    let mut written = Vec::new();
    if todo.is_empty() {
        return Ok(written);
    }
    // The sysroot as the Rust build asked for it (kept between builds; ~20-140 ms each time
    // through rustup's proxy otherwise).
    let objcopy = find_objcopy(|| {
        let answers = Answers::for_build(cfg.target_dir.as_deref(), rust::PLAN_ANSWERS);
        rust::sysroot(None, &cfg.project_dir, &answers)
    })?;
    for i in todo {
        let a = &mut artifacts[i];
        let debug = debug_path(&a.path);
        Cmd::new(
            &objcopy,
            format!("keep the debug info of {} for {}", a.name, a.platform),
        )
        .arg("--only-keep-debug")
        .arg(&a.path)
        .arg(&debug)
        .run()?;
        // --add-gnu-debuglink records the file name and its CRC; run from its directory so
        // that only the name is recorded.
        let dir = a.path.parent().unwrap_or(Path::new("."));
        let name = |p: &Path| p.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        Cmd::new(&objcopy, format!("strip {} for {}", a.name, a.platform))
            .arg("--strip-all")
            .arg({
                let mut s = std::ffi::OsString::from("--add-gnu-debuglink=");
                s.push(name(&debug));
                s
            })
            .arg(name(&a.path))
            .dir(dir)
            .run()?;
        let data = fs_err::read(&a.path)?;
        a.sha256 = crate::digest::sha256_hex(&data);
        a.size = data.len() as u64;
        a.report = crate::elf::inspect_bytes(&data)
            .with_context(|| format!("reading {} after stripping it", a.path.display()))?;
        progress.say(&format!(
            "stripped {} ({}); debug info in {}",
            a.path.display(),
            crate::progress::human_size(a.size),
            debug.display()
        ));
        written.push(debug);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sysroot_objcopy_is_used_only_beside_the_llvm_library_it_loads() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("lib/rustlib/x86_64-unknown-linux-gnu");
        let touch = |p: PathBuf| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"").unwrap();
            p
        };
        // What rustc alone ships: rust-objcopy without libLLVM beside it (exits 127).
        let rust_objcopy = touch(host.join("bin/rust-objcopy"));
        assert_eq!(objcopy_in_sysroot(d.path()), None);
        // llvm-tools adds the library (and its own llvm-objcopy, preferred).
        touch(host.join("lib/libLLVM.so.22.1-rust-1.95.0-stable"));
        assert_eq!(objcopy_in_sysroot(d.path()), Some(rust_objcopy));
        let llvm_objcopy = touch(host.join("bin/llvm-objcopy"));
        assert_eq!(objcopy_in_sysroot(d.path()), Some(llvm_objcopy));
        assert_eq!(objcopy_in_sysroot(&d.path().join("none")), None);
    }
}
