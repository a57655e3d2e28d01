//! `cargo xtask bench polyglot`: examples/polyglot (static site, Go server, Rust worker, C
//! helper) built for four platforms three ways:
//! - kiln's shared job limit (one jobserver, one job per CPU, every stage at once);
//! - the same stages started at once with no limit (`-j 1000`);
//! - one platform at a time (four `kiln build --platform P` runs, the sums).
//!
//! Goal: the shared limit at least as fast as the better of the other two, with a lower peak
//! memory than unbounded.
//!
//! What is cold (`KILN_BENCH_COLD`):
//! - `project` (default): every compile of the example's own code. Before each way, each
//!   component's source gets a new stamp (a Go package variable, a Rust and a C comment), so
//!   the Go server package, the Rust worker crate and the C helper are compiled and linked
//!   again for every platform, and the site step runs again. Warm, as on a developer's
//!   machine or a CI cache: Go's standard library in Go's own GOCACHE, Rust's std
//!   (prebuilt, and the `-Zbuild-std` one of linux/arm/v7 in the shared target dir), zig's
//!   musl, the cargo registry.
//! - `full`: an empty target dir and GOCACHE per way (Go's standard library and
//!   `-Zbuild-std` compiled again for each); zig's libc and the cargo registry stay warm.
//!   Tens of minutes on 2 cores.
//!
//! `KILN_BENCH_PLATFORMS=a,b` changes the platforms.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::build::{Sample, measure};

const PLATFORMS: &str = "linux/amd64,linux/arm64,linux/386,linux/arm/v7";

/// What a way starts from.
#[derive(Clone, Copy, PartialEq)]
enum Cold {
    /// The example's own code; toolchain libraries warm (shared target dir and GOCACHE).
    Project,
    /// Empty target dir and GOCACHE per way.
    Full,
}

struct Bench {
    kiln: PathBuf,
    project: PathBuf,
    scratch: PathBuf,
    cold: Cold,
}

impl Bench {
    /// `kiln build` of the example for the way named `run`: its own target dir and GOCACHE
    /// when fully cold, else the shared warm ones.
    fn kiln(&self, run: &str, platforms: &str, jobs: Option<usize>) -> anyhow::Result<Command> {
        let dir = self.scratch.join(match self.cold {
            Cold::Full => run,
            Cold::Project => "warm",
        });
        let mut c = Command::new(&self.kiln);
        c.arg("build")
            .arg(&self.project)
            .args(["--release", "--quiet", "--platform", platforms])
            .arg("--target-dir")
            .arg(dir.join("target"))
            .arg("--out-dir")
            .arg(self.scratch.join(run).join("dist"));
        // Project-cold: Go's own GOCACHE (warm on a machine that has built Go before).
        if self.cold == Cold::Full {
            c.env("GOCACHE", dir.join("gocache"));
        }
        if let Some(j) = jobs {
            c.args(["-j", &j.to_string()]);
        }
        Ok(c)
    }

    /// Make the way named `run` start cold: an empty directory when fully cold, else a new
    /// stamp in every component's source.
    fn fresh(&self, run: &str) -> anyhow::Result<()> {
        let d = self.scratch.join(run);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        if self.cold == Cold::Project {
            self.stamp(run)?;
        }
        Ok(())
    }

    /// A new stamp in the Go, Rust and C sources: each compiles and links again. Go's is a
    /// package variable (a comment alone leaves the object, so the link, cached).
    fn stamp(&self, run: &str) -> anyhow::Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        for (file, line) in [
            (
                "server/main.go",
                format!("var benchStamp = \"{run} {nanos}\"\n"),
            ),
            (
                "worker/src/main.rs",
                format!("// bench stamp {run} {nanos}\n"),
            ),
            (
                "checksum/checksum.c",
                format!("/* bench stamp {run} {nanos} */\n"),
            ),
        ] {
            let path = self.project.join(file);
            let text = std::fs::read_to_string(&path)?;
            let kept: String = text
                .lines()
                .filter(|l| !l.contains("bench stamp") && !l.starts_with("var benchStamp"))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&path, format!("{kept}{line}"))?;
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
    let cold = match std::env::var("KILN_BENCH_COLD").as_deref() {
        Ok("full") => Cold::Full,
        Ok("project") | Err(_) => Cold::Project,
        Ok(other) => anyhow::bail!("KILN_BENCH_COLD={other}: use `project` or `full`"),
    };
    let b = Bench {
        kiln: kiln.to_path_buf(),
        project,
        scratch,
        cold,
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\n== polyglot example (web, server, worker, checksum), {platforms} ==");
    println!(
        "inputs: {cpus} CPUs; kiln {}; load average before: {}",
        kiln.display(),
        load_average()
    );
    match cold {
        Cold::Project => println!(
            "cold (KILN_BENCH_COLD=project): every compile and link of the example's own code \
             (Go server package, Rust worker crate, C helper; new source stamps per way) and \
             the site step; warm: Go's standard library (Go's own GOCACHE), Rust's std incl. \
             -Zbuild-std (shared target dir), zig's musl, cargo registry"
        ),
        Cold::Full => println!(
            "cold (KILN_BENCH_COLD=full): empty --target-dir and GOCACHE per way (Go's standard \
             library and -Zbuild-std compiled again); warm: zig's musl, rustup std, cargo \
             registry"
        ),
    }

    // Warm-up: toolchains installed, zig's libc and (project-cold) the toolchain libraries
    // built for each platform (not timed).
    let t = std::time::Instant::now();
    b.fresh("warmup")?;
    measure(&mut b.kiln("warmup", &platforms, None)?)?;
    println!("  (warm-up, not timed: {:.0} s)", t.elapsed().as_secs_f64());

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

    println!("  load average after: {}", load_average());

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

/// `/proc/loadavg`'s three averages, for the report (the machine may be shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
