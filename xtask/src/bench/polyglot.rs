//! `cargo xtask bench polyglot`: examples/polyglot (static site, Go server, Rust worker, C
//! helper) built cold for four platforms three ways:
//! - kiln's shared job limit (one jobserver, one job per CPU, every stage at once);
//! - the same stages started at once with no limit (`-j 1000`);
//! - one platform at a time (four `kiln build --platform P` runs, the sums).
//!
//! Goal: the shared limit at least as fast as the better of the other two, with a lower peak
//! memory than unbounded. "Cold" is an empty target dir and an empty GOCACHE per run; zig's
//! libc cache, rustup's std and the cargo registry stay warm (they are per machine, not per
//! build). `KILN_BENCH_PLATFORMS=a,b` changes the platforms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::build::{Sample, measure};

const PLATFORMS: &str = "linux/amd64,linux/arm64,linux/386,linux/arm/v7";

struct Bench {
    kiln: PathBuf,
    project: PathBuf,
    scratch: PathBuf,
}

impl Bench {
    /// `kiln build` of the example with a fresh target dir and GOCACHE named `run`.
    fn kiln(&self, run: &str, platforms: &str, jobs: Option<usize>) -> anyhow::Result<Command> {
        let dir = self.scratch.join(run);
        let mut c = Command::new(&self.kiln);
        c.arg("build")
            .arg(&self.project)
            .args(["--release", "--quiet", "--platform", platforms])
            .arg("--target-dir")
            .arg(dir.join("target"))
            .arg("--out-dir")
            .arg(dir.join("dist"))
            .env("GOCACHE", dir.join("gocache"));
        if let Some(j) = jobs {
            c.args(["-j", &j.to_string()]);
        }
        Ok(c)
    }

    fn fresh(&self, run: &str) -> anyhow::Result<()> {
        let d = self.scratch.join(run);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        Ok(())
    }
}

pub fn run_bench(kiln: &Path) -> anyhow::Result<()> {
    let platforms = std::env::var("KILN_BENCH_PLATFORMS").unwrap_or_else(|_| PLATFORMS.into());
    let scratch = crate::target_dir().join("bench").join("polyglot");
    let project = scratch.join("polyglot");
    if project.exists() {
        std::fs::remove_dir_all(&project)?;
    }
    std::fs::create_dir_all(&scratch)?;
    crate::run(
        Command::new("cp")
            .arg("-r")
            .arg(crate::root().join("examples/polyglot"))
            .arg(&project),
    )?;
    let b = Bench {
        kiln: kiln.to_path_buf(),
        project,
        scratch,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n== polyglot example (web, server, worker, checksum), cold, {platforms} ==");
    println!(
        "inputs: {cpus} CPUs; kiln {}; cold = empty --target-dir and GOCACHE per run; warm = \
         zig's cache, rustup std, cargo registry",
        kiln.display()
    );

    // Warm-up: toolchains installed, zig's libc for each platform built (not timed).
    b.fresh("warmup")?;
    measure(&mut b.kiln("warmup", &platforms, None)?)?;

    b.fresh("shared")?;
    let shared = measure(&mut b.kiln("shared", &platforms, None)?)?;
    println!("  shared job limit (-j {cpus}):     {}", shared.show());
    b.fresh("unbounded")?;
    let unbounded = measure(&mut b.kiln("unbounded", &platforms, Some(1000))?)?;
    println!("  all at once, no limit (-j 1000): {}", unbounded.show());
    b.fresh("serial")?;
    let mut serial = Sample {
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
        peak_rss: 0,
    };
    for p in platforms.split(',') {
        let s = measure(&mut b.kiln("serial", p, None)?)?;
        serial.wall += s.wall;
        serial.cpu += s.cpu;
        serial.peak_rss = serial.peak_rss.max(s.peak_rss);
    }
    println!("  one platform at a time:          {}", serial.show());

    let best = unbounded.wall.min(serial.wall).as_secs_f64();
    let ratio = shared.wall.as_secs_f64() / best;
    let mem = shared.peak_rss as f64 / unbounded.peak_rss.max(1) as f64;
    println!(
        "  shared / better of the others: {ratio:.2}x wall (goal <= 1.00: {}); peak memory vs \
         unbounded {mem:.2}x (goal < 1.00: {})",
        if ratio <= 1.0 { "met" } else { "NOT met" },
        if mem < 1.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
