//! `cargo xtask fuzz [SECONDS]`: run the ELF parser's libFuzzer target (fuzz/) for a
//! bounded time on the committed seed corpus, as CI does; `run_dockerfile` does the same for
//! the Dockerfile parser and linter (seeds: the lint test corpus). New inputs go to a scratch corpus
//! under target/, so the committed seeds stay small; crashes are left in
//! fuzz/artifacts/inspect/ with instructions for turning them into regression tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Fuzz the `inspect` target for `seconds` seconds.
pub fn run(seconds: u64) -> anyhow::Result<()> {
    run_target(
        "inspect",
        "kiln::elf::inspect_bytes",
        "fuzz/corpus/seed",
        "tests/fixtures/elf-fuzz-regressions/ (it is replayed by `cargo test --test inspect_mutations`)",
        seconds,
    )
}

/// Fuzz the `dockerfile` target (parser, stages, every lint rule, printers) for `seconds` seconds.
pub fn run_dockerfile(seconds: u64) -> anyhow::Result<()> {
    run_target(
        "dockerfile",
        "kiln::dockerfile::{parse, lint}",
        "tests/fixtures/dockerfiles/corpus",
        "a unit test in src/dockerfile/parse.rs",
        seconds,
    )
}

fn run_target(
    target: &str,
    what: &str,
    seeds: &str,
    regressions: &str,
    seconds: u64,
) -> anyhow::Result<()> {
    let root = crate::root();
    let fuzz_version = || {
        Command::new("cargo")
            .args(["+nightly", "fuzz", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !fuzz_version() {
        // Installing it is what a user would be told to do; CI machines start without it.
        eprintln!("installing cargo-fuzz (cargo install cargo-fuzz --locked)");
        let ok = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !fuzz_version() {
            bail!(
                "cargo-fuzz on a nightly toolchain is needed: run `rustup toolchain install \
                 nightly --profile minimal && cargo install cargo-fuzz`"
            );
        }
    }
    let scratch = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let artifacts = root.join("fuzz/artifacts").join(target);
    let before = list(&artifacts);
    eprintln!("fuzzing {what} for {seconds} s (seed corpus {seeds})");
    let status = Command::new("cargo")
        .current_dir(&root)
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", target])
        .arg(&scratch)
        .arg(seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // Bounded memory is part of the contract: fail on any input that needs more.
        .args(["-rss_limit_mb=512", "-malloc_limit_mb=256", "-timeout=10"])
        .status()
        .context("running cargo +nightly fuzz run")?;
    let new: Vec<PathBuf> = list(&artifacts)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    if !status.success() || !new.is_empty() {
        let mut msg = format!("the fuzzer found {} failing input(s):\n", new.len());
        for p in &new {
            msg.push_str(&format!("  {}\n", p.display()));
        }
        msg.push_str(&format!(
            "Reproduce with `cargo +nightly fuzz run --fuzz-dir fuzz {target} <file>`, turn the file \
             into {regressions}, fix the parser and commit both."
        ));
        bail!(msg);
    }
    eprintln!("no crash in {seconds} s");
    Ok(())
}

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
