//! `cargo xtask TASK`: the project's own automation; `TASKS` lists the tasks and generates
//! the usage text. `setup` installs everything the demo and the tests need (idempotent, root
//! on Debian); `demo` and `ci` run it first, so each of the README's two commands works on its
//! own.

mod bench;
mod dist;
mod fuzz;
mod setup;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

/// One `cargo xtask` task: its name, its arguments as the usage shows them, what it does, and
/// the function that runs it with the arguments after the name.
struct Task {
    name: &'static str,
    args: &'static str,
    about: &'static str,
    run: fn(&[String]) -> anyhow::Result<()>,
}

const TASKS: &[Task] = &[
    Task {
        name: "setup",
        args: "",
        about: "install zig, Rust targets, nightly + rust-src, Go, make, cmake, qemu-user + binfmt, skopeo, umoci, docker",
        run: |_| setup::run_setup(),
    },
    Task {
        name: "demo",
        args: "",
        about: "setup, then build the Rust, Go and C examples for linux/amd64 + linux/arm64 with --smoke and an OCI image",
        run: |_| demo(),
    },
    Task {
        name: "ci",
        args: "",
        about: "setup, then fmt check, clippy -D warnings, fuzzing (ELF 60 s, Dockerfile 25 s, images 30 s), every test",
        run: |_| ci(),
    },
    Task {
        name: "e2e",
        args: "[--all]",
        about: "the long integration tests (--all: the full platform matrix, then `dist` for every platform)",
        run: |args| e2e(args.iter().any(|a| a == "--all")),
    },
    Task {
        name: "dist",
        args: "[--platform P,...] [--out-dir DIR]",
        about: "kiln releases itself with kiln: static binaries for every platform of targets.toml (or those named), smoke-run under qemu, archives, SBOMs, provenance, SHA256SUMS, an image with kiln as entrypoint (default dist/release)",
        run: dist::run_dist,
    },
    Task {
        name: "bench",
        args: "[go|build|image|inspect|push|polyglot]",
        about: "benchmarks against the peer tools (all, or the one named)",
        run: |args| bench::run(args.first().map(String::as_str)),
    },
    Task {
        name: "fuzz",
        args: "[image|dockerfile] [SECONDS]",
        about: "fuzz the ELF inspector (default 60 s), or the image readers (30 s), or the Dockerfile parser and linter (25 s)",
        run: fuzz_task,
    },
];

/// Every task with its arguments: `setup | demo | … | fuzz [image|dockerfile] [SECONDS]`
/// (README and CHANGELOG show this line; a test keeps them in step).
fn synopsis() -> String {
    let tasks: Vec<String> = TASKS
        .iter()
        .map(|t| format!("{} {}", t.name, t.args).trim_end().to_string())
        .collect();
    tasks.join(" | ")
}

/// The usage text, from `TASKS`.
fn usage() -> String {
    let mut text = format!("usage: cargo xtask {}\n", synopsis());
    for t in TASKS {
        text.push_str(&format!("\n  {:<6} {}", t.name, t.about));
    }
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args
        .first()
        .and_then(|name| TASKS.iter().find(|t| t.name == name));
    let Some(task) = task else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    match (task.run)(&args[1..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `fuzz [image|dockerfile] [SECONDS]`: the ELF inspector by default.
fn fuzz_task(args: &[String]) -> anyhow::Result<()> {
    let seconds = |i: usize| args.get(i).and_then(|s| s.parse().ok());
    match args.first().map(String::as_str) {
        Some("image") => fuzz::run_image(seconds(1).unwrap_or(30)),
        Some("dockerfile") => fuzz::run_dockerfile(seconds(1).unwrap_or(25)),
        _ => fuzz::run(seconds(0).unwrap_or(60)),
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Run a command in the repository root, inheriting output; fail on non-zero.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: $ {}", show(cmd));
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("could not start {}", show(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(cmd));
    }
    Ok(())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// cargo: the one that runs this xtask (`$CARGO`), else `cargo` on PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// cargo of the nightly toolchain (for cargo-fuzz). `$CARGO` is one toolchain's own cargo,
/// which knows no `+nightly`: rustup picks the toolchain.
pub fn cargo_nightly() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"]);
    cmd
}

/// The cargo target dir: `$CARGO_TARGET_DIR`, else target/ in the repository.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Build kiln (release) and return its path.
fn build_kiln() -> anyhow::Result<PathBuf> {
    run(cargo().args(["build", "--release", "--package", "kiln", "--bins"]))?;
    Ok(target_dir().join("release/kiln"))
}

/// The projects `demo` builds.
const EXAMPLES: &[&str] = &["hello-rust", "hello-go", "hello-c"];

fn demo() -> anyhow::Result<()> {
    setup::run_setup()?;
    let kiln = build_kiln()?;
    let out = root().join("out");
    for example in EXAMPLES {
        let dir = root().join("examples").join(example);
        eprintln!("\nxtask: building examples/{example} for linux/amd64,linux/arm64\n");
        run(Command::new(&kiln)
            .arg("build")
            .arg(&dir)
            .args([
                "--release",
                "--platform",
                "linux/amd64,linux/arm64",
                "--smoke",
                "--out-dir",
            ])
            .arg(root().join("dist"))
            .arg("--output")
            .arg(format!("oci:{}:latest", out.join(example).display())))?;
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    setup::run_setup()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The inspector must not panic on any input: a bounded fuzz run on the seed corpus.
    // Before the tests, so the test runner's summary is the run's closing line.
    fuzz::run(60)?;
    // The Dockerfile parser and linter likewise (they read untrusted files too).
    fuzz::run_dockerfile(25)?;
    // The image readers (archives, indexes, layers) read other people's images: 30 s.
    fuzz::run_image(30)?;
    if std::env::var_os("CI").is_some() {
        // The sanitizer builds are ~2 GB the tests do not need; a CI disk is small.
        let dir = root().join("fuzz/target");
        std::fs::remove_dir_all(&dir)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .with_context(|| format!("removing {}", dir.display()))?;
    }
    run(cargo().args(["test", "--workspace"]))?;
    Ok(())
}

fn e2e(all: bool) -> anyhow::Result<()> {
    setup::run_setup()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--", "--ignored"]);
    if all {
        cmd.env("KILN_E2E_ALL", "1");
    }
    run(&mut cmd)?;
    if all {
        // kiln releasing itself for every platform: a cold release build per target.
        dist::run_dist(&[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_names_every_benchmark() {
        let bench = TASKS.iter().find(|t| t.name == "bench").unwrap();
        assert_eq!(bench.args, format!("[{}]", bench::names().join("|")));
    }

    #[test]
    fn readme_and_changelog_list_the_tasks_of_the_usage() {
        let line = format!("cargo xtask {}", synopsis());
        for doc in ["README.md", "CHANGELOG.md"] {
            let text = std::fs::read_to_string(root().join(doc)).unwrap();
            assert!(text.contains(&line), "{doc} does not list `{line}`");
        }
    }
}
