//! `cargo xtask bench push`: a 4-platform image (20 MiB of distinct machine code per
//! platform, from `bench image`) pushed to a local docker-registry (127.0.0.1, random port,
//! storage in a temp dir) by kiln and by `skopeo copy --all oci:… docker://…` in the same
//! run, each cold push into a registry of its own (a second push to the same registry lets
//! skopeo mount the blobs from the first, through its blob-info cache); then kiln's
//! re-push of the unchanged image, and the requests a second build with that image as a
//! cached `--base` makes.
//! Goals: cold push ≤ 0.8× skopeo; unchanged re-push ≤ 0.3 s; at most one request.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::image::{PLATFORMS, make_binaries};
use super::{load_average, median};

/// Cold pairs timed (`KILN_BENCH_RUNS`, default 5): the median is reported.
fn runs() -> usize {
    std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5)
}

fn sh(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn timed(cmd: &mut Command) -> anyhow::Result<Duration> {
    let t = Instant::now();
    sh(cmd)?;
    Ok(t.elapsed())
}

/// A docker-registry on a random loopback port with its storage and access log in `dir`;
/// killed when dropped.
struct Registry {
    child: std::process::Child,
    dir: std::path::PathBuf,
    addr: String,
}

impl Registry {
    fn start(dir: &Path) -> anyhow::Result<Registry> {
        std::fs::create_dir_all(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (cargo xtask setup installs it)")?;
        let registry = Registry {
            child,
            dir: dir.to_path_buf(),
            addr,
        };
        let t = Instant::now();
        while TcpStream::connect(&registry.addr).is_err() {
            if t.elapsed() > Duration::from_secs(20) {
                bail!("docker-registry did not listen on {}", registry.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(registry)
    }

    fn log_lines(&self, keep: impl Fn(&str) -> bool) -> usize {
        std::fs::read_to_string(self.dir.join("registry.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| keep(l))
            .count()
    }

    /// Requests in its access log so far.
    fn requests(&self) -> usize {
        self.log_lines(|l| {
            ["\"GET ", "\"HEAD ", "\"PUT ", "\"POST ", "\"PATCH "]
                .iter()
                .any(|m| l.contains(m))
        })
    }

    /// Blobs mounted from another repository (none on a cold push).
    fn mounts(&self) -> usize {
        self.log_lines(|l| l.contains("\"POST ") && l.contains("mount=") && l.contains("\" 201 "))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run_bench(kiln: &Path) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    if std::env::var_os("KILN_BENCH_KEEP").is_some() {
        println!(
            "  KILN_BENCH_KEEP: keeping {} (layout, registries)",
            tmp.path().display()
        );
    }
    let result = bench(kiln, tmp.path());
    if std::env::var_os("KILN_BENCH_KEEP").is_some() {
        let _ = tmp.keep();
    }
    result
}

fn bench(kiln: &Path, dir: &Path) -> anyhow::Result<()> {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx)?;
    let bins = make_binaries(&ctx)?;
    let layout = dir.join("layout");
    let cache = dir.join("cache");
    let mut image = Command::new(kiln);
    image
        .arg("image")
        .env("KILN_CACHE_DIR", &cache)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    for (p, b) in PLATFORMS.iter().zip(&bins) {
        image.arg("--binary").arg(format!("{p}={}", b.display()));
    }
    let digest = sh(image
        .arg("-q")
        .arg("--output")
        .arg(format!("oci:{}:bench", layout.display())))?;
    let blob_sizes: Vec<u64> = std::fs::read_dir(layout.join("blobs/sha256"))?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .collect();
    let size: u64 = blob_sizes.iter().sum();
    let mib = |n: u64| n as f64 / (1 << 20) as f64;
    let bin_sizes: Vec<String> = bins
        .iter()
        .map(|b| Ok(format!("{:.1}", mib(std::fs::metadata(b)?.len()))))
        .collect::<anyhow::Result<_>>()?;
    println!(
        "bench push: {} platforms ({}), binaries of {} MiB (distinct bytes each), gzip layers",
        PLATFORMS.len(),
        PLATFORMS.join(", "),
        bin_sizes.join(" / ")
    );
    println!(
        "  image: {} blobs, {:.1} MiB in all (largest {:.1} MiB), index {digest}",
        blob_sizes.len(),
        mib(size),
        mib(blob_sizes.iter().copied().max().unwrap_or(0))
    );
    let runs = runs();
    println!(
        "  cold: each push into a docker-registry of its own (fresh storage, new port), kiln with an empty cache,"
    );
    println!(
        "        so neither tool can mount a blob (skopeo's blob-info cache mounts from earlier pushes to the"
    );
    println!(
        "        same registry); who goes first alternates; median of {runs} pairs (KILN_BENCH_RUNS)"
    );
    println!("  warm = kiln pushing the same image to the same repository again");
    println!("  load average before: {}", load_average());
    let src = format!("oci:{}:bench", layout.display());
    let (mut k, mut s) = (Vec::new(), Vec::new());
    let (mut k_requests, mut s_requests, mut mounts) = (0, 0, 0);
    for run in 0..runs {
        let kiln_push = |run: usize| -> anyhow::Result<(Duration, usize, usize)> {
            let reg = Registry::start(&dir.join(format!("registry-kiln-{run}")))?;
            let t = timed(
                Command::new(kiln)
                    .args(["index", "merge", "-q", "--output"])
                    .arg(format!("docker://{}/app:1", reg.addr))
                    .arg(&src)
                    .env("KILN_CACHE_DIR", dir.join(format!("cache-{run}"))),
            )?;
            Ok((t, reg.requests(), reg.mounts()))
        };
        let skopeo_push = |run: usize| -> anyhow::Result<(Duration, usize, usize)> {
            let reg = Registry::start(&dir.join(format!("registry-skopeo-{run}")))?;
            let t = timed(
                Command::new("skopeo")
                    .args(["copy", "--all", "--dest-tls-verify=false", "-q"])
                    .arg(&src)
                    .arg(format!("docker://{}/app:1", reg.addr)),
            )?;
            Ok((t, reg.requests(), reg.mounts()))
        };
        let (kr, sr) = if run % 2 == 0 {
            let kr = kiln_push(run)?;
            (kr, skopeo_push(run)?)
        } else {
            let sr = skopeo_push(run)?;
            (kiln_push(run)?, sr)
        };
        k.push(kr.0);
        s.push(sr.0);
        (k_requests, s_requests) = (kr.1, sr.1);
        mounts += kr.2 + sr.2;
    }
    let ratios: Vec<f64> = k
        .iter()
        .zip(&s)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    let each = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  cold runs (ms): kiln {}; skopeo {}", each(&k), each(&s));
    let (km, sm) = (median(k), median(s));
    let ratio = km.as_secs_f64() / sm.as_secs_f64();
    println!(
        "  cold push      kiln {:>7.2?}   skopeo copy --all {:>7.2?}   ratio {:.2} (goal ≤ 0.80: {}; median of the pairs' ratios {:.2})",
        km,
        sm,
        ratio,
        if ratio <= 0.8 { "met" } else { "NOT met" },
        median(ratios)
    );
    println!(
        "  requests of one cold push (the last): kiln {k_requests}, skopeo {s_requests}; blobs mounted in all cold pushes: {mounts}"
    );

    // The warm part and the base build use one registry; kiln-0 is pushed there first.
    let reg = Registry::start(&dir.join("registry"))?;
    let addr = reg.addr.clone();
    sh(Command::new(kiln)
        .args(["index", "merge", "-q", "--output"])
        .arg(format!("docker://{addr}/kiln-0:1"))
        .arg(&src)
        .env("KILN_CACHE_DIR", dir.join("cache-0")))?;
    let raw = sh(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{addr}/kiln-0:1")))?;
    let pushed = kiln::digest::sha256_digest(raw.as_bytes());
    println!(
        "  registry digest {} kiln's",
        if pushed == digest {
            "equals"
        } else {
            "DIFFERS FROM"
        }
    );

    let again: Vec<Duration> = (0..runs)
        .map(|_| {
            timed(
                Command::new(kiln)
                    .args(["index", "merge", "-q", "--output"])
                    .arg(format!("docker://{addr}/kiln-0:1"))
                    .arg(&src)
                    .env("KILN_CACHE_DIR", dir.join("cache-0")),
            )
        })
        .collect::<anyhow::Result<_>>()?;
    let am = median(again);
    println!(
        "  warm re-push   kiln {:>7.2?} (goal ≤ 0.30 s: {}; whole `kiln index merge` run: reads the layout's documents, one HEAD of the tag)",
        am,
        if am.as_secs_f64() <= 0.3 {
            "met"
        } else {
            "NOT met"
        }
    );

    // A second build on that image as its base: the first fills the cache, the second
    // should make one request (the tag's manifest HEAD).
    let base_build = |out: &str| {
        let mut c = Command::new(kiln);
        c.args(["image", "-q", "--binary"])
            .arg(format!("{}={}", PLATFORMS[0], bins[0].display()))
            .args(["--base", &format!("{addr}/kiln-0:1"), "--output"])
            .arg(format!("oci:{}", dir.join(out).display()))
            .env("KILN_CACHE_DIR", &cache);
        sh(&mut c)
    };
    base_build("based-1")?;
    let before = reg.requests();
    base_build("based-2")?;
    let n = reg.requests() - before;
    println!(
        "  second build with a cached base: {n} request(s) (goal ≤ 1: {})",
        if n <= 1 { "met" } else { "NOT met" }
    );
    println!("  load average after: {}", load_average());
    Ok(())
}
