//! `cargo xtask fuzz [SECONDS]`: run the ELF parser's libFuzzer target (fuzz/) for a
//! bounded time on the committed seed corpus, as CI does; `run_dockerfile` does the same for
//! the Dockerfile parser and linter (seeds: the lint test corpus), `run_image` for the image
//! readers (seeds: archives kiln writes). New inputs go to a scratch corpus
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
        "tests/fixtures/elf-fuzz-regressions/ (it is replayed by `cargo test --test integration inspect_mutations::`)",
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

/// Fuzz the `image` target (archive store, index walk, layer decoders, the inspector's
/// layer tree) for `seconds` seconds, seeded with archives kiln itself writes.
pub fn run_image(seconds: u64) -> anyhow::Result<()> {
    let seeds = image_seeds()?;
    let seeds = seeds
        .strip_prefix(crate::root())
        .unwrap_or(&seeds)
        .display()
        .to_string();
    run_target(
        "image",
        "kiln::inspect::image::inspect_image (oci-archive, docker-archive)",
        &seeds,
        "a test in tests/harden_images.rs",
        seconds,
    )
}

/// Real kiln outputs as seeds: the committed static fixtures packed as oci-archive (gzip,
/// zstd, uncompressed) and docker-archive, into target/fuzz-seeds/image.
fn image_seeds() -> anyhow::Result<PathBuf> {
    let root = crate::root();
    let dir = root.join("target/fuzz-seeds/image");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // A debug build is enough to write seeds (and is usually there already).
    let status = crate::cargo()
        .current_dir(&root)
        .args(["build", "--package", "kiln", "--bins"])
        .status()
        .context("building kiln for the fuzz seeds")?;
    if !status.success() {
        bail!("building kiln for the fuzz seeds failed ({status})");
    }
    let kiln = crate::target_dir().join("debug/kiln");
    let fixtures = root.join("tests/fixtures/elf");
    let runs: [(&str, &[&str]); 4] = [
        ("oci-gzip.tar", &["--output", "oci-archive:{}"]),
        (
            "oci-zstd.tar",
            &["--compression", "zstd", "--output", "oci-archive:{}"],
        ),
        (
            "oci-none.tar",
            &["--compression", "none", "--output", "oci-archive:{}"],
        ),
        (
            "docker.tar",
            &[
                "--docker-platform",
                "linux/arm64",
                "--output",
                "docker-archive:{}",
            ],
        ),
    ];
    for (name, args) in runs {
        let out = dir.join(name);
        let mut cmd = Command::new(&kiln);
        cmd.args(["image", "-q"])
            .arg(format!(
                "--binary=linux/amd64={}",
                fixtures.join("amd64-static").display()
            ))
            .arg(format!(
                "--binary=linux/arm64={}",
                fixtures.join("arm64-static").display()
            ));
        for a in args {
            cmd.arg(a.replace("{}", &out.display().to_string()));
        }
        let status = cmd.status().context("running kiln image for a fuzz seed")?;
        if !status.success() {
            bail!("kiln image for the fuzz seed {name} failed ({status})");
        }
    }
    Ok(dir)
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
        crate::cargo_nightly()
            .args(["fuzz", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !fuzz_version() {
        // Installing it is what a user would be told to do; CI machines start without it.
        eprintln!("installing cargo-fuzz (cargo install cargo-fuzz --locked)");
        let ok = crate::cargo()
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
    let status = crate::cargo_nightly()
        .current_dir(&root)
        .args(["fuzz", "run", "--fuzz-dir", "fuzz", target])
        .arg(&scratch)
        .arg(seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // Bounded memory is part of the contract: fail on any input that needs more.
        .args(["-rss_limit_mb=512", "-malloc_limit_mb=256", "-timeout=10"])
        .status()
        .context("running cargo fuzz run (nightly)")?;
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
