//! `cargo xtask bench push`: a 4-platform image (20 MiB of distinct machine code per
//! platform, from `bench image`) pushed to a local docker-registry (127.0.0.1, random port,
//! storage in a temp dir) by kiln and by `skopeo copy --all oci:… docker://…` in the same
//! run, each into fresh repositories; then kiln's re-push of the unchanged image, and the
//! requests a second build with that image as a cached `--base` makes.
//! Goals: cold push ≤ 0.8× skopeo; unchanged re-push ≤ 0.3 s; at most one request.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::image::{PLATFORMS, make_binaries};
use super::median;

const RUNS: usize = 3;

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

pub fn run_bench(kiln: &Path) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
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
    let mut registry = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting docker-registry (cargo xtask setup installs it)")?;
    let result = (|| {
        let t = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            if t.elapsed() > Duration::from_secs(20) {
                bail!("docker-registry did not listen on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bench(kiln, dir, &addr)
    })();
    let _ = registry.kill();
    let _ = registry.wait();
    result
}

fn requests(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("registry.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            ["\"GET ", "\"HEAD ", "\"PUT ", "\"POST ", "\"PATCH "]
                .iter()
                .any(|m| l.contains(m))
        })
        .count()
}

fn bench(kiln: &Path, dir: &Path, addr: &str) -> anyhow::Result<()> {
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
    println!(
        "  registry: docker-registry at {addr} (storage in a temp dir); median of {RUNS} runs each"
    );
    println!(
        "  cold = a repository nobody pushed to, kiln with an empty cache (no mount hints), skopeo alternating first;"
    );
    println!("  warm = kiln pushing the same image to the same repository again");
    let src = format!("oci:{}:bench", layout.display());
    let (mut k, mut s) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        // Alternate who goes first; each push goes to a repository nobody pushed to.
        let kiln_push = |run: usize| {
            timed(
                Command::new(kiln)
                    .args(["index", "merge", "-q", "--output"])
                    .arg(format!("docker://{addr}/kiln-{run}:1"))
                    .arg(&src)
                    .env("KILN_CACHE_DIR", dir.join(format!("cache-{run}"))),
            )
        };
        let skopeo_push = |run: usize| {
            timed(
                Command::new("skopeo")
                    .args(["copy", "--all", "--dest-tls-verify=false", "-q"])
                    .arg(&src)
                    .arg(format!("docker://{addr}/skopeo-{run}:1")),
            )
        };
        if run % 2 == 0 {
            k.push(kiln_push(run)?);
            s.push(skopeo_push(run)?);
        } else {
            s.push(skopeo_push(run)?);
            k.push(kiln_push(run)?);
        }
    }
    let (km, sm) = (median(k), median(s));
    println!(
        "  cold push      kiln {:>7.2?}   skopeo copy --all {:>7.2?}   ratio {:.2} (goal ≤ 0.80)",
        km,
        sm,
        km.as_secs_f64() / sm.as_secs_f64()
    );
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

    let again: Vec<Duration> = (0..RUNS)
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
        "  warm re-push   kiln {:>7.2?} (goal ≤ 0.30 s; whole `kiln index merge` run: reads the layout's documents, one HEAD of the tag)",
        am
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
    let before = requests(dir);
    base_build("based-2")?;
    let n = requests(dir) - before;
    println!("  second build with a cached base: {n} request(s) (goal ≤ 1)");
    Ok(())
}
