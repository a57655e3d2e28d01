//! Shared helpers for the integration tests: the kiln binary, the bundled examples and
//! fixtures, a shared cargo target dir so repeated runs stay warm, and tool checks that fail
//! with the install command instead of passing silently.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(name)
}

/// A cargo target dir shared by every test run, so example builds are incremental.
pub fn shared_target_dir() -> PathBuf {
    root().join("target").join("kiln-tests")
}

/// `kiln` as built by cargo for this test run.
pub fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    // Keep the user's overrides from leaking into the tests.
    for var in [
        "KILN_PLATFORMS",
        "KILN_OUT_DIR",
        "KILN_ZIG",
        "SOURCE_DATE_EPOCH",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "KILN_GO",
        "CGO_ENABLED",
        "GOFLAGS",
        "CFLAGS",
        "LDFLAGS",
    ] {
        c.env_remove(var);
    }
    c
}

/// `kiln build examples/hello-rust --release` for linux/amd64 + linux/arm64, warm shared
/// target dir, binaries into `out_dir`.
pub fn example_build(out_dir: &Path) -> Command {
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

/// Run and capture, echoing what happened into the test log.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    eprintln!(
        "$ {:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The path of a tool the test needs; panics with the install command when it is missing
/// (never a silent pass).
pub fn require_tool(name: &str, install: &str) -> PathBuf {
    which::which(name).unwrap_or_else(|_| {
        panic!("this test needs `{name}`: {install} (or run `cargo xtask setup`)")
    })
}

/// Copy a directory tree (fixtures are small).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "dist" || name == "out" {
            continue;
        }
        let dest = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// The JSON lines kiln printed with `--message-format json`.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
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

/// `kiln build PROJECT --platform PLATFORMS` into `out`, with the shared target dir.
pub fn build_into(project: &Path, platforms: &str, out: &Path, extra: &[&str]) -> Output {
    run(kiln()
        .arg("build")
        .arg(project)
        .args(["--platform", platforms])
        .arg("--target-dir")
        .arg(shared_target_dir())
        .arg("--out-dir")
        .arg(out)
        .args(extra))
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

/// A `go` in `dir` that appends its subcommand to `dir/go.log`, then runs the real one
/// (for `KILN_GO`): how tests count `go build` runs. Returns (wrapper, log).
pub fn logging_go(dir: &Path) -> (PathBuf, PathBuf) {
    let real = kiln::toolchain::go::find_go().unwrap().path;
    let log = dir.join("go.log");
    let wrapper = dir.join("go");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    (wrapper, log)
}
