//! `kiln build` helpers: the example build, building a project into a directory with the
//! shared target dir, the platform matrix, and checks on the binaries with kiln's inspector.

use std::path::Path;
use std::process::Output;

use super::{capture, example, kiln, shared_target_dir};

/// `kiln build examples/hello-rust --release` for linux/amd64 + linux/arm64, warm shared
/// target dir, binaries into `out_dir`.
pub fn example_build(out_dir: &Path) -> std::process::Command {
    let mut cmd = kiln();
    cmd.arg("build")
        .arg(example("hello-rust"))
        .args(["--release", "--platform", "linux/amd64,linux/arm64"])
        .arg("--target-dir")
        .arg(shared_target_dir())
        .arg("--out-dir")
        .arg(out_dir);
    cmd
}

/// `kiln build PROJECT --platform PLATFORMS` into `out`, with the shared target dir
/// (through [`capture`]: any exit status).
pub fn build_into(project: &Path, platforms: &str, out: &Path, extra: &[&str]) -> Output {
    capture(
        kiln()
            .arg("build")
            .arg(project)
            .args(["--platform", platforms])
            .arg("--target-dir")
            .arg(shared_target_dir())
            .arg("--out-dir")
            .arg(out)
            .args(extra),
    )
}

/// The platforms a matrix test builds: every platform in targets.toml with
/// `KILN_E2E_ALL=1` (`cargo xtask e2e --all`), else a spread of four: native, a 64-bit
/// foreign one, 32-bit ARM, and a big-endian one.
pub fn matrix_platforms() -> Vec<String> {
    if std::env::var("KILN_E2E_ALL").is_ok_and(|v| v == "1") {
        kiln::target::Targets::builtin()
            .all
            .iter()
            .map(|t| t.platform.to_string())
            .collect()
    } else {
        ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x"]
            .map(String::from)
            .to_vec()
    }
}

/// kiln's own inspector on a built binary.
pub fn report(bin: &Path) -> kiln::elf::ElfReport {
    kiln::elf::inspect_path(bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

/// `Tag_CPU_arch` from a 32-bit ARM binary's build attributes: `v7`, `v6KZ`, …
pub fn arm_cpu_arch(bin: &Path) -> Option<String> {
    report(bin).arm.and_then(|a| a.cpu_arch)
}

/// A `build` setting from a Go binary's build info: `GOARM`, `CGO_ENABLED`, `-trimpath`.
pub fn go_build_setting(bin: &Path, key: &str) -> Option<String> {
    report(bin).go?.setting(key).map(str::to_string)
}

/// `bin` exists, is for `arch` (OCI name) and needs no loader or shared library.
pub fn assert_static_for(bin: &Path, arch: &str) {
    assert!(bin.is_file(), "{} missing", bin.display());
    let r = report(bin);
    assert_eq!(r.arch, Some(arch), "{}", bin.display());
    assert!(
        r.interpreter.is_none() && r.needed.is_empty(),
        "{}: {r:?}",
        bin.display()
    );
}

/// The common part of the `every_platform_*` tests: `project` built with `--smoke` (plus
/// `extra`) for every platform of [`matrix_platforms`], which must succeed, and for each
/// platform the binary `bin` is static and for the platform's architecture, and on 32-bit ARM
/// kiln's report gives the platform's variant — with `arm_attributes` (code compiled by zig or
/// LLVM; Go's own linker writes no build attributes) also a `Tag_CPU_arch` of that version.
/// `each` adds the language's own checks per platform. Returns kiln's stderr.
pub fn build_every_platform(
    project: &Path,
    bin: &str,
    extra: &[&str],
    arm_attributes: bool,
    each: impl Fn(&kiln::target::Target, &Path, &str),
) -> String {
    let platforms = matrix_platforms();
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec!["--smoke"];
    args.extend_from_slice(extra);
    let out = build_into(project, &platforms.join(","), tmp.path(), &args);
    let err = super::stderr(&out);
    assert!(out.status.success(), "{err}");
    let targets = kiln::target::Targets::builtin();
    for p in &platforms {
        let target = targets.find(p).unwrap();
        let path = tmp.path().join(target.platform.dir_name()).join(bin);
        assert_static_for(&path, &target.platform.architecture);
        if let Some(v) = &target.platform.variant {
            assert_eq!(report(&path).variant.as_ref(), Some(v), "{p} {bin}");
            if arm_attributes {
                let arch = arm_cpu_arch(&path).unwrap_or_default();
                assert!(arch.starts_with(v.as_str()), "{p} {bin}: {arch}");
            }
        }
        each(target, &path, &err);
    }
    err
}

/// Run two builds that share a target dir so that the second starts while the first is
/// stopped between its compiler's end and the copy of its binaries out (the debug-build hook
/// `KILN_TEST_HOLD_AFTER_BUILD`), give the second up to `gap` to do its own build in that
/// gap (long enough for its compiler to run when nothing stops it), then let the first go on. Returns both outputs (first, second). Each command should pipe
/// stdout and stderr.
pub fn race_in_one_target_dir(
    mut first: std::process::Command,
    mut second: std::process::Command,
    hold: &Path,
    gap: std::time::Duration,
) -> (Output, Output) {
    let mut first = first
        .env("KILN_TEST_HOLD_AFTER_BUILD", hold)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !hold.exists() {
        if first.try_wait().unwrap().is_some() {
            let out = first.wait_with_output().unwrap();
            panic!(
                "the first build ended before its copy: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(600),
            "the first build never reached its copy"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut second = second.spawn().unwrap();
    // Give the second build time to run its compiler (a rebuild) if nothing stops it.
    let until = std::time::Instant::now() + gap;
    while second.try_wait().unwrap().is_none() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::fs::remove_file(hold).unwrap();
    (
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    )
}
