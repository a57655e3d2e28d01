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
//! "Cold" is an empty target dir with the sources fetched and zig's global cache warm:
//! zig builds a libc (with compiler-rt and unwind) once per target *and per set of flags*
//! (the Rust link and jemalloc's configure tests need different ones), and whichever tool
//! ran first would otherwise pay for both. So before timing, each tool builds a small crate
//! that links a Rust binary and, from its build script, a C program with cc-rs's flags
//! through the tool's own `CC` (what jemalloc's configure does); after each timed run the
//! bench reports any runtime archive zig still had to build. Both tools run the same zig
//! binary (cargo-zigbuild would otherwise go through `python3 -m ziglang` on every
//! compiler call). `KILN_BENCH_RUNS=N` repeats the cold pairs (alternating which tool goes
//! first); `KILN_BENCH_PARTS=cold3,cold1,noop` picks the parts (default all). The
//! cargo-zigbuild runs pass `--timings`; the bench prints their three longest units (the
//! critical path: the same cargo and zig run in kiln's build).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use clap::Parser;

use super::{load_average, median};
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
pub(super) struct Sample {
    pub(super) wall: Duration,
    /// user + sys of every process in the tree.
    pub(super) cpu: Duration,
    /// Peak of the summed resident set sizes of the tree, bytes.
    pub(super) peak_rss: u64,
}

impl Sample {
    pub(super) fn utilisation(&self) -> f64 {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        self.cpu.as_secs_f64() / self.wall.as_secs_f64() / cpus
    }

    pub(super) fn show(&self) -> String {
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
pub(super) fn measure(cmd: &mut Command) -> anyhow::Result<Sample> {
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

/// The `--timings` report of the cargo run in `target_dir` (empty when it is missing).
fn timings_report(target_dir: &Path) -> String {
    std::fs::read_to_string(target_dir.join("cargo-timings/cargo-timing.html")).unwrap_or_default()
}

/// Print the three longest units of a cargo `--timings` report, with when each started: the
/// build's critical path is made of them. Nothing when the report is missing or its format
/// changed.
fn longest_units(html: &str) {
    for (duration, start, name) in longest(html, 3) {
        println!(
            "           cargo --timings: {name:<36} start {start:6.1} s  ran {duration:6.1} s  end {:6.1} s",
            start + duration
        );
    }
}

/// Print the least wall time a tool doing cargo-zigbuild's CPU work (`sample`, whose
/// `--timings` report is `html`) could take here ([`perfect_schedule`]): what no
/// scheduling of the same compiler work can beat.
fn scheduling_bound(html: &str, sample: &Sample) {
    let tail = lone_tail(html);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound = perfect_schedule(sample, cpus, tail);
    println!(
        "           the same CPU work ({:.1} s) on {cpus} CPUs, the last unit's {tail:.1} s alone: \
         >= {bound:.1} s = {:.2}x cargo-zigbuild, for any tool running these compilers",
        sample.cpu.as_secs_f64(),
        bound / sample.wall.as_secs_f64()
    );
}

/// Every unit (duration, start, "name target") of a cargo `--timings` report; empty when
/// it has none or its format changed.
fn units(html: &str) -> Vec<(f64, f64, String)> {
    let Some(data) = html
        .split_once("const UNIT_DATA = ")
        .and_then(|(_, rest)| rest.split_once(";\n"))
        .and_then(|(json, _)| serde_json::from_str::<serde_json::Value>(json).ok())
    else {
        return Vec::new();
    };
    data.as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| {
            let target = u["target"].as_str().unwrap_or("").trim();
            Some((
                u["duration"].as_f64()?,
                u["start"].as_f64()?,
                format!("{} {target}", u["name"].as_str()?)
                    .trim()
                    .to_string(),
            ))
        })
        .collect()
}

/// The `n` longest units (duration, start, "name target") of a cargo `--timings` report.
fn longest(html: &str, n: usize) -> Vec<(f64, f64, String)> {
    let mut units = units(html);
    units.sort_by(|a, b| b.0.total_cmp(&a.0));
    units.truncate(n);
    units
}

/// How long the unit that ends last runs after every other unit has ended (nothing else is
/// left to run beside it then), seconds.
fn lone_tail(html: &str) -> f64 {
    let mut ends: Vec<(f64, f64)> = units(html).iter().map(|u| (u.1 + u.0, u.1)).collect();
    ends.sort_by(|a, b| a.0.total_cmp(&b.0));
    match ends.as_slice() {
        [] => 0.0,
        [(end, start)] => end - start,
        [.., (others, _), (end, start)] => end - others.max(*start),
    }
}

/// The least wall time any tool could need for `sample`'s CPU work on `cpus` CPUs, given
/// that `tail` seconds of it ran on one thread alone at the end: the rest spread over every
/// CPU, that tail after it.
fn perfect_schedule(sample: &Sample, cpus: usize, tail: f64) -> f64 {
    let cpu = sample.cpu.as_secs_f64();
    let tail = tail.min(cpu);
    (cpu - tail) / cpus.max(1) as f64 + tail
}

/// cargo-zigbuild runs `python3 -m ziglang` whenever that imports (a Python start, through
/// pyenv's shim here, on every compiler call) and reads `CARGO_ZIGBUILD_ZIG_PATH` only
/// when it does not: name a Python that does not exist so it runs kiln's zig directly.
fn same_zig(cmd: &mut Command, zig: &Path) {
    cmd.env(
        "CARGO_ZIGBUILD_PYTHON_PATH",
        "/nonexistent/kiln-bench-no-python",
    )
    .env("CARGO_ZIGBUILD_ZIG_PATH", zig);
}

/// zig's global cache directory (`global_cache_dir` in `zig env`).
fn zig_cache_dir(zig: &Path) -> Option<PathBuf> {
    let out = Command::new(zig).arg("env").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("global_cache_dir"))?;
    let (start, end) = (line.find('"')? + 1, line.rfind('"')?);
    (start < end).then(|| PathBuf::from(&line[start..end]))
}

/// The libc, compiler-rt, unwind and ubsan archives zig wrote into its cache since `since`.
fn zig_runtime_builds(cache: &Path, since: SystemTime) -> Vec<String> {
    const RUNTIMES: [&str; 5] = [
        "libc.a",
        "libzigc.a",
        "libcompiler_rt.a",
        "libunwind.a",
        "libubsan_rt.a",
    ];
    let newer = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since)
    };
    let Ok(dirs) = std::fs::read_dir(cache.join("o")) else {
        return Vec::new();
    };
    let mut found: Vec<String> = dirs
        .flatten()
        .map(|d| d.path())
        .filter(|d| newer(d))
        .flat_map(|d| {
            RUNTIMES
                .iter()
                .filter(|name| newer(&d.join(name)))
                .map(|name| name.to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    found
}

/// The warm-up crate: a Rust binary (zig links it as rustc asks) whose build script links a
/// C program through `CC` with the flags cc-rs `CC_VERSION` gives a release build, three
/// times over, as jemalloc's configure does (`$CC $CFLAGS $CPPFLAGS $LDFLAGS conftest.c`).
fn warm_crate(bench: &Path, cc_version: &str) -> anyhow::Result<PathBuf> {
    let dir = bench.join("warm-crate");
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"kiln-bench-warm\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [[bin]]\nname = \"warm\"\npath = \"src/main.rs\"\n\n\
             [build-dependencies]\ncc = \"={cc_version}\"\n\n[workspace]\n"
        ),
    )?;
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n")?;
    std::fs::write(
        dir.join("build.rs"),
        r#"use std::process::Command;

fn main() {
    let cc = cc::Build::new().extra_warnings(false).get_compiler();
    let flags = cc.args();
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let src = out.join("conftest.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let status = Command::new(cc.path())
        .args(flags)
        .args(flags)
        .args(flags)
        .arg(&src)
        .arg("-o")
        .arg(out.join("conftest"))
        .status()
        .unwrap();
    assert!(status.success(), "linking conftest.c failed");
}
"#,
    )?;
    Ok(dir)
}

/// The version of `name` in a Cargo.lock.
fn locked_version(lock: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            let v = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(v.trim_end_matches('"').to_string());
        }
    }
    None
}

struct Bench {
    kiln: PathBuf,
    zigbuild: PathBuf,
    zig: PathBuf,
    /// zig's global cache, to see what zig built during a timed run.
    zig_cache: Option<PathBuf>,
    project: PathBuf,
    scratch: PathBuf,
    locked: bool,
}

impl Bench {
    /// `kiln build` of `project` (the benchmark's own, or the warm-up crate).
    fn kiln(&self, project: &Path, platforms: &str, target_dir: &Path) -> Command {
        let mut c = Command::new(&self.kiln);
        c.arg("build")
            .arg(project)
            .args(["--release", "--quiet", "--platform", platforms])
            .arg("--target-dir")
            .arg(target_dir)
            .arg("--out-dir")
            .arg(target_dir.join("dist"));
        if self.locked && project == self.project {
            c.arg("--locked");
        }
        c
    }

    /// `cargo zigbuild` of `project` for `triples`.
    fn zigbuild(&self, project: &Path, triples: &[&str], target_dir: &Path) -> Command {
        let mut c = Command::new(&self.zigbuild);
        c.args(["zigbuild", "--release", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir);
        same_zig(&mut c, &self.zig);
        for t in triples {
            c.args(["--target", t]);
        }
        if self.locked && project == self.project {
            c.arg("--locked");
        }
        c
    }

    /// What zig had to build during a timed run that started at `since` (nothing, when the
    /// warm-up covered the flags this project needs).
    fn zig_built(&self, since: SystemTime) -> String {
        let Some(cache) = &self.zig_cache else {
            return String::new();
        };
        let built = zig_runtime_builds(cache, since);
        if built.is_empty() {
            return String::new();
        }
        format!(
            "  (zig built {} runtime archive(s) in this run: {})",
            built.len(),
            built.join(", ")
        )
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
            type Timed = (Sample, String);
            let one = |kiln_first: bool| -> anyhow::Result<(Timed, Timed)> {
                let (mut k, mut z) = (None, None);
                for tool in if kiln_first { [0, 1] } else { [1, 0] } {
                    let since = SystemTime::now();
                    if tool == 0 {
                        let d = self.fresh_dir(&format!("cold-kiln-{}", triples.len()))?;
                        k = Some((
                            measure(&mut self.kiln(&self.project, platforms, &d))?,
                            self.zig_built(since),
                        ));
                    } else {
                        let d = self.fresh_dir(&format!("cold-zigbuild-{}", triples.len()))?;
                        // --timings: where the time went (kiln runs the same cargo).
                        let mut zb = self.zigbuild(&self.project, triples, &d);
                        zb.arg("--timings");
                        let sample = measure(&mut zb)?;
                        z = Some((sample, self.zig_built(since)));
                        let html = timings_report(&d);
                        longest_units(&html);
                        scheduling_bound(&html, &sample);
                    }
                }
                Ok((k.expect("ran"), z.expect("ran")))
            };
            let ((k, k_zig), (z, z_zig)) = one(i % 2 == 0)?;
            let ratio = k.wall.as_secs_f64() / z.wall.as_secs_f64();
            println!(
                "  run {}: kiln build          {}  load {}{k_zig}",
                i + 1,
                k.show(),
                load_average()
            );
            println!(
                "         cargo zigbuild      {}  load {}{z_zig}",
                z.show(),
                load_average()
            );
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
        let mut kiln = self.kiln(&self.project, PLATFORMS, &dir);
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
            "  kiln - cargo = {extra:+.3} s (goal <= +0.100 s): {}  load {}",
            if extra <= 0.1 { "met" } else { "NOT met" },
            load_average()
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
        zig_cache: zig_cache_dir(&zig),
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
    let load = load_average();
    println!("\n== bench build: inputs ==");
    println!("  project   {CRATE} {VERSION} (bin {BIN}), --release, Cargo.lock: {locked}");
    println!("  kiln      {}", b.kiln.display());
    println!(
        "  zigbuild  {} (zig {}, the same binary kiln runs)",
        b.zigbuild.display(),
        b.zig.display()
    );
    println!("  machine   {cpus} CPUs, load average at start: {}", load);

    // zig builds a libc per target and per set of flags on first use: pay it before
    // timing, for both tools, for the Rust link and for jemalloc's configure tests.
    eprintln!("xtask: warming zig's cache for the three targets and both tools (not timed)");
    let cc_version = locked_version(&b.project.join("Cargo.lock"), "cc")
        .context("no cc in the project's Cargo.lock")?;
    let warm = warm_crate(&bench, &cc_version)?;
    let warm_dir = b.fresh_dir("warm")?;
    run(&mut b.kiln(&warm, PLATFORMS, &warm_dir))?;
    let mut zw = b.zigbuild(&warm, &TRIPLES, &warm_dir.join("zigbuild"));
    zw.arg("--quiet");
    run(&mut zw)?;
    println!(
        "  warm-up   kiln-bench-warm (a Rust link and a C link with cc {cc_version}'s release flags, per target and tool)"
    );

    // KILN_BENCH_PARTS=cold3,cold1,noop (the default: all) picks the parts to run.
    let parts = std::env::var("KILN_BENCH_PARTS").unwrap_or_else(|_| "cold3,cold1,noop".into());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    println!("  parts     {parts}");
    if part("cold3") {
        b.cold_pair("amd64 + arm64 + 386", PLATFORMS, &TRIPLES, runs, 0.8)?;
    }
    if part("cold1") {
        b.cold_pair("arm64 alone", "linux/arm64", &TRIPLES[1..2], runs, 0.85)?;
    }
    if part("noop") {
        b.noop()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_units_of_a_timings_report() {
        let html = r#"<script>
const UNIT_DATA = [
  {"i": 0, "name": "memchr", "version": "2.7.4", "mode": "todo", "target": "", "start": 0.5, "duration": 2.0, "rmeta_time": 1.0, "unlocked_units": [], "unlocked_rmeta_units": [], "sections": null},
  {"i": 1, "name": "jemalloc-sys", "version": "0.5.4", "mode": "run-custom-build", "target": " build-script (run)", "start": 23.8, "duration": 118.2, "rmeta_time": null, "unlocked_units": [], "unlocked_rmeta_units": [], "sections": null},
  {"i": 2, "name": "fd-find", "version": "10.2.0", "mode": "todo", "target": " fd \"bin\"", "start": 142.2, "duration": 55.3, "rmeta_time": null, "unlocked_units": [], "unlocked_rmeta_units": [], "sections": null}
];
const CONCURRENCY_DATA = [];
</script>"#;
        let top = longest(html, 2);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].2, "jemalloc-sys build-script (run)");
        assert_eq!((top[0].0, top[0].1), (118.2, 23.8));
        assert_eq!(top[1].2, "fd-find fd \"bin\"");
        assert!(longest("no report here", 3).is_empty());
        // fd's crate runs alone from its start (142.2 s; jemalloc's build script ended at
        // 142.0 s) to its end.
        assert!((lone_tail(html) - 55.3).abs() < 1e-9, "{}", lone_tail(html));
        assert_eq!(lone_tail("no report here"), 0.0);
    }

    #[test]
    fn a_perfect_schedule_spreads_all_but_the_lone_tail_over_the_cpus() {
        let sample = Sample {
            wall: Duration::from_secs(178),
            cpu: Duration::from_secs(292),
            peak_rss: 0,
        };
        assert_eq!(
            perfect_schedule(&sample, 2, 55.0),
            55.0 + (292.0 - 55.0) / 2.0
        );
        assert_eq!(perfect_schedule(&sample, 2, 0.0), 146.0);
        // A tail longer than the CPU time (a unit waiting, not computing) counts only the CPU.
        assert_eq!(perfect_schedule(&sample, 2, 500.0), 292.0);
    }
}
