//! `cargo xtask setup | demo | ci | e2e [--all] | bench`: the project's own automation.
//! `setup` installs everything the demo and the tests need (idempotent, root on Debian);
//! `demo` and `ci` run it first, so each of the README's two commands works on its own.

mod bench_build;
mod bench_go;
mod bench_image;
mod bench_inspect;
mod bench_push;
mod fuzz;
mod setup;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run_setup(),
        Some("demo") => demo(),
        Some("ci") => ci(),
        Some("e2e") => e2e(args.iter().any(|a| a == "--all")),
        Some("bench") => bench(args.get(1).map(String::as_str)),
        Some("fuzz") if args.get(1).map(String::as_str) == Some("image") => {
            fuzz::run_image(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(30))
        }
        Some("fuzz") => fuzz::run(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60)),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|demo|ci|e2e [--all]|bench [go|build|image|inspect|push]|fuzz [image] [SECONDS]>\n\
                 \n  setup  install zig, Rust targets, nightly + rust-src, Go, make, cmake, qemu-user + binfmt, skopeo, umoci, docker\
                 \n  demo   setup, then build the Rust, Go and C examples for linux/amd64 + linux/arm64 with --smoke and an OCI image\
                 \n  ci     setup, then fmt check, clippy -D warnings, every test, 60 s of fuzzing\
                 \n  e2e    the long integration tests (--all: the full platform matrix)\
                 \n  bench  benchmarks against the peer tools (all, or the one named)\
                 \n  fuzz   fuzz the ELF inspector (default 60 s), or with `image` the image readers (30 s)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
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

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Build kiln (release) and return its path.
fn build_kiln() -> anyhow::Result<PathBuf> {
    run(cargo().args(["build", "--release", "--package", "kiln", "--bins"]))?;
    Ok(root().join("target/release/kiln"))
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
    run(&mut cmd)
}

/// All benchmarks, or the one named (`go`, `build`, `image`, `inspect`, `push`).
fn bench(only: Option<&str>) -> anyhow::Result<()> {
    const NAMES: [&str; 5] = ["go", "build", "image", "inspect", "push"];
    if let Some(name) = only
        && !NAMES.contains(&name)
    {
        bail!("no benchmark `{name}`: choose one of {}", NAMES.join(", "));
    }
    let wanted = |name: &str| only.is_none_or(|o| o == name);
    setup::run_setup()?;
    // KILN_BENCH_EXE: time this kiln binary instead of building a release one.
    let kiln = match std::env::var_os("KILN_BENCH_EXE") {
        Some(exe) => std::path::absolute(PathBuf::from(exe))?,
        None => build_kiln()?,
    };
    if wanted("go") {
        bench_go::run_bench(&kiln)?;
    }
    if wanted("build") {
        bench_build::run_bench(&kiln)?;
    }
    if wanted("image") {
        bench_image::run(&kiln)?;
    }
    if wanted("inspect") {
        bench_inspect::run()?;
    }
    if wanted("push") {
        bench_push::run(&kiln)?;
    }
    Ok(())
}
