//! `cargo xtask bench polyglot`: examples/polyglot (static site, Go server, Rust worker, C
//! helper) built for four platforms three ways:
//! - kiln's shared job limit (one jobserver, one job per CPU, every stage at once);
//! - the same stages started at once with no limit (`-j 1000`);
//! - one platform at a time (four `kiln build --platform P` runs, the sums).
//!
//! `KILN_BENCH_ROUNDS` rounds (default 3) run the three ways in a rotating order; the
//! medians are compared. Each way reports wall, CPU utilisation, peak RSS, how much of the
//! machine stayed idle and the load before it; the last shared way's stages are listed
//! from kiln's `KILN_TRACE`.
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
use super::load_average;

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

    let rounds: usize = std::env::var("KILN_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!(
        "{rounds} rounds (KILN_BENCH_ROUNDS), the three ways in a rotating order; per way: \
         wall, cpu = user+sys of the tree / (wall x {cpus} CPUs), peak rss = the tree's summed \
         resident sets (50 ms samples), idle = the whole machine's idle share meanwhile, load"
    );
    let ways = [Way::Shared, Way::Unbounded, Way::Serial];
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); ways.len()];
    for round in 0..rounds {
        for k in 0..ways.len() {
            let w = (round + k) % ways.len();
            let way = ways[w];
            let load = load_average();
            let idle = Idle::now();
            let s = b.way(way, &platforms)?;
            let idle = idle.since();
            println!(
                "  round {} {:<34} {}  idle {:>3.0}%  load before {load}",
                round + 1,
                way.title(cpus),
                s.show(),
                idle * 100.0
            );
            samples[w].push(s);
        }
    }
    let median_of = |w: usize| {
        let mut v = samples[w].clone();
        v.sort_by_key(|s| s.wall);
        v[v.len() / 2]
    };
    let (shared, unbounded, serial) = (median_of(0), median_of(1), median_of(2));
    println!("  medians of {rounds}:");
    for (way, s) in ways.iter().zip([shared, unbounded, serial]) {
        println!("    {:<34} {}", way.title(cpus), s.show());
    }
    println!("  load average after: {}", load_average());
    if let Ok(trace) = std::fs::read_to_string(b.scratch.join("shared").join("trace.txt")) {
        println!("  last shared way, from KILN_TRACE (seconds from its start):");
        for line in trace_summary(&trace) {
            println!("    {line}");
        }
    }

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

/// The three ways of building every platform.
#[derive(Clone, Copy)]
enum Way {
    /// One `kiln build`, kiln's job limit (one job per CPU).
    Shared,
    /// One `kiln build -j 1000`: every stage and compiler at once.
    Unbounded,
    /// One `kiln build --platform P` per platform, one after another (the sums).
    Serial,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Shared => "shared",
            Way::Unbounded => "unbounded",
            Way::Serial => "serial",
        }
    }

    fn title(self, cpus: usize) -> String {
        match self {
            Way::Shared => format!("shared job limit (-j {cpus}):"),
            Way::Unbounded => "all at once, no limit (-j 1000):".into(),
            Way::Serial => "one platform at a time:".into(),
        }
    }
}

impl Bench {
    /// One timed way, from fresh stamps; its commands traced to `<way>/trace.txt`.
    fn way(&self, way: Way, platforms: &str) -> anyhow::Result<Sample> {
        let run = way.name();
        self.fresh(run)?;
        let trace = self.scratch.join(run).join("trace.txt");
        std::fs::create_dir_all(self.scratch.join(run))?;
        let traced = |mut c: Command| {
            c.env("KILN_TRACE", &trace);
            c
        };
        match way {
            Way::Shared => measure(&mut traced(self.kiln(run, platforms, None)?)),
            Way::Unbounded => measure(&mut traced(self.kiln(run, platforms, Some(1000))?)),
            Way::Serial => {
                let mut sum = Sample {
                    wall: Duration::ZERO,
                    cpu: Duration::ZERO,
                    peak_rss: 0,
                };
                for p in platforms.split(',') {
                    let s = measure(&mut traced(self.kiln(run, p, None)?))?;
                    sum.wall += s.wall;
                    sum.cpu += s.cpu;
                    sum.peak_rss = sum.peak_rss.max(s.peak_rss);
                }
                Ok(sum)
            }
        }
    }
}

/// The machine's CPU time counters (`/proc/stat`), to tell how much of it stayed idle.
struct Idle {
    idle: u64,
    total: u64,
}

impl Idle {
    fn now() -> Idle {
        let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = text
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal ...
        Idle {
            idle: fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0),
            total: fields.iter().take(8).sum(),
        }
    }

    /// The idle share of all CPUs since `self`.
    fn since(&self) -> f64 {
        let now = Idle::now();
        let total = now.total.saturating_sub(self.total).max(1);
        now.idle.saturating_sub(self.idle) as f64 / total as f64
    }
}

/// Per stage of a `KILN_TRACE` file (`START READY END TOKENS WHAT`): when it started and
/// ended, from the first line's start, and how long its commands waited for tokens.
fn trace_summary(trace: &str) -> Vec<String> {
    let lines: Vec<(f64, f64, f64, &str)> = trace
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(5, ' ');
            let start = f.next()?.parse().ok()?;
            let ready = f.next()?.parse().ok()?;
            let end = f.next()?.parse().ok()?;
            let _tokens = f.next()?;
            Some((start, ready, end, f.next()?))
        })
        .collect();
    let t0 = lines.iter().map(|l| l.0).fold(f64::INFINITY, f64::min);
    let waited: f64 = lines
        .iter()
        .filter(|l| !l.3.starts_with("stage "))
        .map(|l| l.1 - l.0)
        .sum();
    let mut out: Vec<(f64, String)> = lines
        .iter()
        .filter(|l| l.3.starts_with("stage "))
        .map(|(start, ready, end, what)| {
            (
                *start,
                format!(
                    "{:<28} {:>5.1} - {:>5.1} (built at {:>5.1})",
                    what.trim_start_matches("stage "),
                    start - t0,
                    end - t0,
                    ready - t0
                ),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<String> = out.into_iter().map(|(_, l)| l).collect();
    out.push(format!(
        "commands waited {waited:.1} s for tokens in all ({} commands)",
        lines.iter().filter(|l| !l.3.starts_with("stage ")).count()
    ));
    out
}
