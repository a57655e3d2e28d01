//! `cargo xtask bench build`: kiln against cargo-zigbuild on a real multi-crate project
//! with build scripts and a C dependency, fetched from the crates registry pinned by
//! version (fd-find: jemalloc through a build script that runs configure and make on the
//! 64-bit targets, a proc-macro, ~60 crates).
//!
//! - cold, amd64 + arm64 + 386: kiln vs one `cargo zigbuild --target … ×3` (goal ≤ 0.8×)
//! - cold, arm64 alone: kiln vs `cargo zigbuild` (goal ≤ 0.85×)
//! - no-op rebuild with an image written vs cargo's own no-op of the command kiln runs
//!   (goal ≤ cargo + 0.1 s)
//!
//! Each line reports wall time, CPU utilisation (user+sys over wall × CPUs) and peak
//! memory (the sum of the resident sets of the whole process tree, sampled every 50 ms).
//! Zig's libc for each target is built before timing (by both tools), the sources are
//! fetched before timing; "cold" is an empty target dir. `KILN_BENCH_RUNS=N` repeats the
//! cold pairs (alternating which tool goes first).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;

use super::median;
use crate::{cargo, root, run};

/// The project: name and exact version on the crates registry, and its binary.
const CRATE: &str = "fd-find";
const VERSION: &str = "10.2.0";
const BIN: &str = "fd";

const TRIPLES: [&str; 3] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "i686-unknown-linux-musl",
];
const PLATFORMS: &str = "linux/amd64,linux/arm64,linux/386";

/// What one timed run cost.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    /// user + sys of every process in the tree.
    cpu: Duration,
    /// Peak of the summed resident set sizes of the tree, bytes.
    peak_rss: u64,
}

impl Sample {
    fn utilisation(&self) -> f64 {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.cpu.as_secs_f64() / self.wall.as_secs_f64() / cpus
    }

    fn show(&self) -> String {
        format!(
            "{:>7.1} s  cpu {:>4.0}%  peak rss {:>6.0} MiB",
            self.wall.as_secs_f64(),
            self.utilisation() * 100.0,
            self.peak_rss as f64 / (1024.0 * 1024.0)
        )
    }
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The summed RSS of `root` and all its descendants, from /proc.
fn tree_rss(root: u32) -> u64 {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut rss: HashMap<u32, u64> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields follow the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // state ppid ... rss is field 24 of stat, index 21 after the name.
        if let (Some(ppid), Some(pages)) = (
            fields.get(1).and_then(|s| s.parse().ok()),
            fields.get(21).and_then(|s| s.parse::<u64>().ok()),
        ) {
            parent.insert(pid, ppid);
            rss.insert(pid, pages * 4096);
        }
    }
    let in_tree = |mut pid: u32| {
        for _ in 0..64 {
            if pid == root {
                return true;
            }
            match parent.get(&pid) {
                Some(&p) if p != 0 => pid = p,
                _ => return false,
            }
        }
        false
    };
    rss.iter()
        .filter(|(pid, _)| in_tree(**pid))
        .map(|(_, r)| r)
        .sum()
}

/// Run `cmd` to success (output discarded) and measure it.
fn measure(cmd: &mut Command) -> anyhow::Result<Sample> {
    let cpu0 = children_cpu();
    let t = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", crate::show(cmd)))?;
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(tree_rss(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let out = child.wait_with_output()?;
    let wall = t.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(30).collect();
        bail!(
            "`{}` failed ({}):\n{}",
            crate::show(cmd),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(Sample {
        wall,
        cpu: children_cpu().saturating_sub(cpu0),
        peak_rss: peak.load(Ordering::Relaxed),
    })
}

/// cargo-zigbuild: on PATH, else installed into target/bench/tools (the `cargo-zigbuild`
/// wheel from the Python package index takes seconds; `cargo install --locked
/// cargo-zigbuild` is the fallback and takes minutes on two cores).
fn cargo_zigbuild(tools: &Path) -> anyhow::Result<PathBuf> {
    if let Ok(p) = which("cargo-zigbuild") {
        return Ok(p);
    }
    let pip_bin = tools.join("pip/bin/cargo-zigbuild");
    let cargo_bin = tools.join("cargo/bin/cargo-zigbuild");
    for p in [&pip_bin, &cargo_bin] {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    let pip = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
        .arg(tools.join("pip"))
        .arg("cargo-zigbuild")
        .status();
    if pip.is_ok_and(|s| s.success()) && pip_bin.is_file() {
        return Ok(pip_bin);
    }
    run(cargo()
        .args(["install", "--locked", "cargo-zigbuild", "--root"])
        .arg(tools.join("cargo")))?;
    Ok(cargo_bin)
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not on PATH"))
}

/// Download `CRATE` `VERSION` through cargo (a throwaway manifest that depends on it; cargo
/// resolves and fetches a package even when it has no library) and unpack it.
fn fetch_project(bench: &Path) -> anyhow::Result<PathBuf> {
    let dest = bench.join(format!("{CRATE}-{VERSION}"));
    if dest.join("Cargo.toml").is_file() {
        return Ok(dest);
    }
    let fetch = bench.join("fetch");
    std::fs::create_dir_all(fetch.join("src"))?;
    std::fs::write(
        fetch.join("Cargo.toml"),
        format!(
            "[package]\nname = \"kiln-bench-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{CRATE} = \"={VERSION}\"\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(fetch.join("src/lib.rs"), "")?;
    run(cargo()
        .arg("fetch")
        .arg("--manifest-path")
        .arg(fetch.join("Cargo.toml")))?;
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    let file = format!("{CRATE}-{VERSION}.crate");
    let krate = std::fs::read_dir(home.join("registry/cache"))?
        .flatten()
        .map(|d| d.path().join(&file))
        .find(|p| p.is_file())
        .with_context(|| format!("cargo fetch left no {file} in {}", home.display()))?;
    run(Command::new("tar")
        .arg("xzf")
        .arg(&krate)
        .arg("-C")
        .arg(bench))?;
    let manifest = dest.join("Cargo.toml");
    ensure!(manifest.is_file(), "{file} unpacked no Cargo.toml");
    // It is unpacked under kiln's target dir, inside kiln's workspace: make it its own.
    let mut text = std::fs::read_to_string(&manifest)?;
    if !text.lines().any(|l| l.trim() == "[workspace]") {
        text.push_str("\n[workspace]\n");
        std::fs::write(&manifest, text)?;
    }
    Ok(dest)
}

struct Bench {
    kiln: PathBuf,
    zigbuild: PathBuf,
    zig: PathBuf,
    project: PathBuf,
    scratch: PathBuf,
    locked: bool,
}

impl Bench {
    fn kiln(&self, platforms: &str, target_dir: &Path) -> Command {
        let mut c = Command::new(&self.kiln);
        c.arg("build")
            .arg(&self.project)
            .args(["--release", "--quiet", "--platform", platforms])
            .arg("--target-dir")
            .arg(target_dir)
            .arg("--out-dir")
            .arg(target_dir.join("dist"));
        if self.locked {
            c.arg("--locked");
        }
        c
    }

    fn zigbuild(&self, triples: &[&str], target_dir: &Path) -> Command {
        let mut c = Command::new(&self.zigbuild);
        c.args(["zigbuild", "--release", "--manifest-path"])
            .arg(self.project.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .env("CARGO_ZIGBUILD_ZIG_PATH", &self.zig);
        for t in triples {
            c.args(["--target", t]);
        }
        if self.locked {
            c.arg("--locked");
        }
        c
    }

    fn fresh_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.scratch.join(name);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        Ok(d)
    }

    /// Cold kiln vs cold cargo-zigbuild, `runs` times, alternating who goes first.
    fn cold_pair(
        &self,
        label: &str,
        platforms: &str,
        triples: &[&str],
        runs: usize,
        goal: f64,
    ) -> anyhow::Result<()> {
        println!("\n== cold release build, {CRATE} {VERSION}, {label} ==");
        let mut ratios = Vec::new();
        for i in 0..runs {
            let one = |kiln_first: bool| -> anyhow::Result<(Sample, Sample)> {
                let (mut k, mut z) = (None, None);
                for tool in if kiln_first { [0, 1] } else { [1, 0] } {
                    if tool == 0 {
                        let d = self.fresh_dir(&format!("cold-kiln-{}", triples.len()))?;
                        k = Some(measure(&mut self.kiln(platforms, &d))?);
                    } else {
                        let d = self.fresh_dir(&format!("cold-zigbuild-{}", triples.len()))?;
                        z = Some(measure(&mut self.zigbuild(triples, &d))?);
                    }
                }
                Ok((k.expect("ran"), z.expect("ran")))
            };
            let (k, z) = one(i % 2 == 0)?;
            let ratio = k.wall.as_secs_f64() / z.wall.as_secs_f64();
            println!("  run {}: kiln build          {}", i + 1, k.show());
            println!("         cargo zigbuild      {}", z.show());
            println!("         ratio kiln / zigbuild {ratio:.2}x");
            ratios.push(ratio);
        }
        let r = median(ratios);
        println!(
            "  median ratio {r:.2}x (goal <= {goal}x): {}",
            if r <= goal { "met" } else { "NOT met" }
        );
        Ok(())
    }

    /// No-op `kiln build` with an image vs cargo's no-op of the commands kiln runs.
    fn noop(&self) -> anyhow::Result<()> {
        const RUNS: usize = 7;
        let dir = self.scratch.join(format!("cold-kiln-{}", TRIPLES.len()));
        let image = self.scratch.join("noop-oci");
        let mut kiln = self.kiln(PLATFORMS, &dir);
        kiln.arg("--output").arg(format!("oci:{}", image.display()));
        // The first run builds what the cold runs left out (if anything) and writes the image.
        measure(&mut kiln)?;
        let args: Vec<std::ffi::OsString> = std::iter::once("kiln".into())
            .chain(kiln.get_args().map(|a| a.to_os_string()))
            .collect();
        let kiln::cli::Command::Build(build_args) = kiln::cli::Cli::try_parse_from(args)?.command
        else {
            bail!("not a build command");
        };
        let cfg = kiln::config::resolve_build(&build_args)?;
        let cargo_cmds = kiln::builders::rust_group::cargo_commands(&cfg, &self.kiln)?;
        let mut k = Vec::new();
        let mut c = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            for cmd in &cargo_cmds {
                cmd.run()?;
            }
            c.push(t.elapsed());
            k.push(measure(&mut kiln)?);
        }
        let cargo_t = median(c);
        let walls = k.iter().map(|s| s.wall).collect();
        let kiln_t = median(walls);
        let peak = k.iter().map(|s| s.peak_rss).max().unwrap_or(0);
        let extra = kiln_t.as_secs_f64() - cargo_t.as_secs_f64();
        println!("\n== no-op rebuild with an image written, {PLATFORMS}, median of {RUNS} ==");
        println!(
            "  cargo build (the {} command(s) kiln runs): {:>6.3} s",
            cargo_cmds.len(),
            cargo_t.as_secs_f64()
        );
        println!(
            "  kiln build --output oci:…:              {:>6.3} s  peak rss {:.0} MiB",
            kiln_t.as_secs_f64(),
            peak as f64 / (1024.0 * 1024.0)
        );
        println!(
            "  kiln - cargo = {extra:+.3} s (goal <= +0.100 s): {}",
            if extra <= 0.1 { "met" } else { "NOT met" }
        );
        Ok(())
    }
}

pub fn run_bench(kiln_exe: &Path) -> anyhow::Result<()> {
    let bench = root().join("target/bench/build");
    std::fs::create_dir_all(&bench)?;
    let zigbuild = cargo_zigbuild(&root().join("target/bench/tools"))?;
    let zig = kiln::toolchain::find_zig()?.path;
    let project = fetch_project(&bench)?;
    let locked = project.join("Cargo.lock").is_file();
    let mut fetch = cargo();
    fetch
        .arg("fetch")
        .arg("--manifest-path")
        .arg(project.join("Cargo.toml"));
    if locked {
        fetch.arg("--locked");
    }
    run(&mut fetch)?;
    let b = Bench {
        kiln: kiln_exe.to_path_buf(),
        zigbuild,
        zig,
        project,
        scratch: bench.join("scratch"),
        locked,
    };
    let runs: usize = std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\n== bench build: inputs ==");
    println!("  project   {CRATE} {VERSION} (bin {BIN}), --release, Cargo.lock: {locked}");
    println!("  kiln      {}", b.kiln.display());
    println!(
        "  zigbuild  {} (zig {})",
        b.zigbuild.display(),
        b.zig.display()
    );
    println!(
        "  machine   {cpus} CPUs, load average at start: {}",
        load.trim()
    );

    // Zig builds each target's libc on first use: pay it before timing, for both tools.
    eprintln!("xtask: warming zig's libc cache for the three targets (not timed)");
    let warm = root().join("examples/hello-rust");
    let warm_dir = b.scratch.join("warm");
    run(Command::new(&b.kiln)
        .arg("build")
        .arg(&warm)
        .args([
            "--release",
            "--quiet",
            "--platform",
            PLATFORMS,
            "--target-dir",
        ])
        .arg(&warm_dir)
        .arg("--out-dir")
        .arg(warm_dir.join("dist")))?;
    let mut zw = Command::new(&b.zigbuild);
    zw.args(["zigbuild", "--release", "--manifest-path"])
        .arg(warm.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(warm_dir.join("zigbuild"))
        .env("CARGO_ZIGBUILD_ZIG_PATH", &b.zig);
    for t in TRIPLES {
        zw.args(["--target", t]);
    }
    run(&mut zw)?;

    b.cold_pair("amd64 + arm64 + 386", PLATFORMS, &TRIPLES, runs, 0.8)?;
    b.cold_pair("arm64 alone", "linux/arm64", &TRIPLES[1..2], runs, 0.85)?;
    b.noop()?;
    Ok(())
}
