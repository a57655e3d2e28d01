//! `--strip` / `[release] split-debuginfo`: each built binary's debug info goes to
//! `<name>.debug` beside it (`objcopy --only-keep-debug`), and the binary itself is
//! stripped of symbols and debug info and given a `.gnu_debuglink` naming that file (its
//! build-id note, when the linker wrote one, stays in both), so the image and archives
//! ship the small binary and a debugger finds the symbols later. llvm-objcopy handles
//! every architecture kiln builds; GNU objcopy on the build machine usually does not.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::builders::Artifact;
use crate::error::ToolchainMissing;
use crate::exec::Cmd;
use crate::progress::Progress;

/// `$KILN_OBJCOPY`, else `llvm-objcopy` on PATH, else rustup's `rust-objcopy` (the
/// llvm-tools component).
pub fn find_objcopy() -> Result<PathBuf, ToolchainMissing> {
    if let Some(p) = std::env::var_os("KILN_OBJCOPY").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Ok(p) = which::which("llvm-objcopy") {
        return Ok(p);
    }
    let sysroot = Cmd::new("rustc", "ask rustc for its sysroot")
        .args(["--print", "sysroot"])
        .read()
        .ok();
    if let Some(root) = sysroot {
        let found = std::fs::read_dir(Path::new(root.trim()).join("lib/rustlib"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin/rust-objcopy"))
            .find(|p| p.is_file());
        if let Some(p) = found {
            return Ok(p);
        }
    }
    Err(ToolchainMissing {
        what: "llvm-objcopy (for --strip)".into(),
        install:
            "run `apt-get install llvm` or `rustup component add llvm-tools`, or set KILN_OBJCOPY"
                .into(),
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
    let objcopy = find_objcopy()?;
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
