//! The one support module of the integration tests: where things are (repository, examples,
//! fixtures, the shared target dir), the kiln binary with a scrubbed environment, running
//! commands, and the missing-tool policy (`tools`). Builders' matrix helpers live in `build`,
//! OCI image helpers in `oci`, the confined kiln of the hostile-input tests in `confined`.
//!
//! Running a command, by what the caller wants back:
//! - [`run_ok`]: asserts success (panics with stdout and stderr), returns the `Output`;
//! - [`capture`]: any exit status, echoed into the test log, returns the `Output`;
//! - [`capture_text`]: like `capture`, as `(exit code, stdout, stderr)`.

#![allow(dead_code)] // not every helper is used by every test file

mod build;
mod confined;
mod oci;
mod tools;

pub use build::*;
pub use confined::*;
pub use oci::*;
pub use tools::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A bundled example project: `examples/NAME`.
pub fn example(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

/// A fixture: `tests/fixtures/NAME`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests").join("fixtures").join(name)
}

/// A committed ELF fixture binary: `tests/fixtures/elf/NAME`.
pub fn elf_fixture(name: &str) -> PathBuf {
    fixture("elf").join(name)
}

/// A cargo target dir shared by every test run, so example builds are incremental.
pub fn shared_target_dir() -> PathBuf {
    root().join("target").join("kiln-tests")
}

/// The variables a user may have set that change what kiln does; every kiln the tests run
/// starts without them (a test that wants one sets it again).
const SCRUBBED_ENV: [&str; 11] = [
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
];

/// `kiln` as built by cargo for this test run, without the user's overrides
/// ([`SCRUBBED_ENV`]).
pub fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    for var in SCRUBBED_ENV {
        c.env_remove(var);
    }
    c
}

/// `kiln ARGS` through [`capture_text`]: (exit code, stdout, stderr).
pub fn kiln_run(args: &[&str]) -> (i32, String, String) {
    kiln_run_env(args, &[])
}

/// [`kiln_run`] with extra environment variables.
pub fn kiln_run_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = kiln();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    capture_text(&mut cmd)
}

/// Run, panic with the output on failure; returns the output of a successful run.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run with any exit status and capture, echoing what happened into the test log.
pub fn capture(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    eprintln!(
        "$ {:?}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// [`capture`] as (exit code, stdout, stderr); -1 when killed by a signal.
pub fn capture_text(cmd: &mut Command) -> (i32, String, String) {
    let out = capture(cmd);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The JSON lines kiln printed with `--message-format json`.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l}: {e}")))
        .collect()
}

/// Copy a directory tree (fixtures are small), leaving out build outputs.
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

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
