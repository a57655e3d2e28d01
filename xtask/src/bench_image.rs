//! `cargo xtask bench image`: pack a 20 MiB static binary for 4 platforms into an image
//! with kiln (the library), umoci (init, new, insert, config) and `docker build` of the
//! equivalent `FROM scratch` + `COPY` Dockerfile (then `docker save`), in one run, and
//! print the times and ratios. The goal is kiln at most half of the fastest other tool.
//!
//! Each platform gets its own binary (same size, different bytes), so no tool can win by
//! noticing the four files are equal. Tools that are missing are reported and skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kiln::oci::{
    BuildOptions, Compression, ImageSpec, LayerEntry, OutputSpec, PlatformImage, build_index,
    write_output,
};

const PLATFORMS: [&str; 4] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/riscv64",
];
const SIZE: usize = 20 << 20;
const RUNS: usize = 5;

/// A 20 MiB "static binary": the committed static hello followed by real machine code
/// (host programs' bytes), so it compresses like a real binary does. `salt` makes each
/// platform's file different.
fn make_binary(path: &Path, salt: u8) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut data = std::fs::read(root.join("tests/fixtures/oci/hello-amd64"))
        .context("reading the hello fixture")?;
    let mut sources: Vec<PathBuf> = std::fs::read_dir("/usr/bin")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    sources.sort();
    for src in sources {
        if data.len() >= SIZE {
            break;
        }
        if let Ok(b) = std::fs::read(&src) {
            data.extend_from_slice(&b);
        }
    }
    data.truncate(SIZE);
    for i in (4096..data.len()).step_by(4096) {
        data[i] ^= salt;
    }
    std::fs::write(path, &data)?;
    let mut perm = std::fs::metadata(path)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(path, perm)?;
    Ok(())
}

fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kiln_once(bins: &[PathBuf], out: &Path, compression: Compression) -> anyhow::Result<()> {
    let images: Vec<PlatformImage> = PLATFORMS
        .iter()
        .zip(bins)
        .map(|(p, b)| PlatformImage {
            platform: p.parse().unwrap(),
            entries: vec![LayerEntry::file("/usr/local/bin/app", b, 0o755)],
            spec: ImageSpec {
                entrypoint: vec!["/usr/local/bin/app".into()],
                ..Default::default()
            },
        })
        .collect();
    let opts = BuildOptions {
        compression,
        ..Default::default()
    };
    let built = build_index(&images, &opts)?;
    write_output(
        &OutputSpec::OciDir {
            dir: out.to_path_buf(),
            tag: Some("bench".into()),
        },
        &built,
    )
}

fn umoci_once(bins: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    sh(Command::new("umoci").args(["init", "--layout"]).arg(out))?;
    for (p, b) in PLATFORMS.iter().zip(bins) {
        let tag = p.replace('/', "-");
        let image = format!("{}:{tag}", out.display());
        let arch = p.split('/').nth(1).unwrap_or_default();
        sh(Command::new("umoci").args(["new", "--image", &image]))?;
        sh(Command::new("umoci")
            .args(["insert", "--image", &image])
            .arg(b)
            .arg("/usr/local/bin/app"))?;
        sh(Command::new("umoci").args([
            "config",
            "--image",
            &image,
            "--architecture",
            arch,
            "--config.user",
            "65532:65532",
            "--config.entrypoint",
            "/usr/local/bin/app",
        ]))?;
    }
    Ok(())
}

fn docker_once(ctx: &Path, out: &Path, run: usize) -> anyhow::Result<()> {
    let mut tags = Vec::new();
    for (i, p) in PLATFORMS.iter().enumerate() {
        let tag = format!("kiln-bench/app:{}-{run}", p.replace('/', "-"));
        sh(Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args([
                "build",
                "-q",
                "--no-cache",
                "--platform",
                p,
                "-t",
                &tag,
                "-f",
            ])
            .arg(ctx.join(format!("Dockerfile.{i}")))
            .arg(ctx))?;
        tags.push(tag);
    }
    sh(Command::new("docker")
        .args(["save", "-o"])
        .arg(out)
        .args(&tags))?;
    let _ = Command::new("docker")
        .args(["rmi", "-f"])
        .args(&tags)
        .output();
    Ok(())
}

/// CPU seconds used so far by this process and by its waited-for children, from
/// /proc/self/stat (utime, stime, cutime, cstime; Linux counts them in 1/100 s).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the parenthesised command name; utime is field 14 (index 11 here).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / 100.0;
    (get(11) + get(12), get(13) + get(14))
}

fn size_of(path: &Path) -> u64 {
    if path.is_file() {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    std::fs::read_dir(path)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

pub fn run() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx)?;
    let bins: Vec<PathBuf> = (0..PLATFORMS.len())
        .map(|i| ctx.join(format!("app-{i}")))
        .collect();
    for (i, b) in bins.iter().enumerate() {
        make_binary(b, i as u8)?;
    }
    // One Dockerfile per platform: the legacy builder (no buildx here) cannot take the
    // file name from a build argument on a foreign platform.
    for i in 0..PLATFORMS.len() {
        std::fs::write(
            ctx.join(format!("Dockerfile.{i}")),
            format!(
                "FROM scratch\nCOPY app-{i} /usr/local/bin/app\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/app\"]\n"
            ),
        )?;
    }
    println!(
        "packing a {} MiB static binary for {} platforms ({}), {RUNS} interleaved rounds",
        SIZE >> 20,
        PLATFORMS.len(),
        PLATFORMS.join(", ")
    );

    type Run<'a> = Box<dyn FnMut(usize, &Path) -> anyhow::Result<()> + 'a>;
    let mut tools: Vec<(&str, &str, Run<'_>)> = vec![
        (
            "kiln (library, gzip)",
            "kiln",
            Box::new(|_, out: &Path| kiln_once(&bins, out, Compression::Gzip)),
        ),
        (
            "kiln (library, zstd)",
            "kiln-zstd",
            Box::new(|_, out: &Path| kiln_once(&bins, out, Compression::Zstd)),
        ),
    ];
    if have("umoci") {
        tools.push((
            "umoci init/new/insert/config",
            "umoci",
            Box::new(|_, out: &Path| umoci_once(&bins, out)),
        ));
    } else {
        println!("umoci: not installed (apt-get install -y umoci), skipped");
    }
    let docker_ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if docker_ok {
        tools.push((
            "docker build x4 + save",
            "docker",
            Box::new(|run, out: &Path| docker_once(&ctx, out, run)),
        ));
    } else {
        println!("docker: no engine answers (apt-get install -y docker.io; dockerd &), skipped");
    }
    // Rounds interleave the tools, so a busy machine slows them all alike. CPU seconds are
    // kiln's own or the tool processes' (docker's work is in the daemon, not counted).
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); tools.len()];
    let mut cpu: Vec<f64> = vec![0.0; tools.len()];
    for run in 0..RUNS {
        for (i, (_, dir_name, f)) in tools.iter_mut().enumerate() {
            let out = tmp.path().join(format!("{dir_name}-{run}"));
            let before = cpu_seconds();
            let t = Instant::now();
            f(run, &out).with_context(|| format!("{dir_name} run {run}"))?;
            times[i].push(t.elapsed());
            let after = cpu_seconds();
            cpu[i] += (after.0 - before.0) + (after.1 - before.1);
        }
    }
    let rows: Vec<(&str, Duration, Duration, f64, u64)> = tools
        .iter()
        .zip(&mut times)
        .zip(&cpu)
        .map(|(((name, dir_name, _), t), cpu)| {
            t.sort();
            (
                *name,
                t[0],
                t[t.len() / 2],
                cpu / RUNS as f64,
                size_of(&tmp.path().join(format!("{dir_name}-0"))),
            )
        })
        .collect();
    let kiln = rows[0].1;

    println!(
        "{:<30} {:>8} {:>8} {:>7} {:>10} {:>8}",
        "tool", "best s", "median s", "CPU s", "output MiB", "vs kiln"
    );
    for (name, t, median, cpu, size) in &rows {
        println!(
            "{name:<30} {:>8.3} {:>8.3} {:>7.2} {:>10.1} {:>7.1}x",
            t.as_secs_f64(),
            median.as_secs_f64(),
            cpu,
            *size as f64 / (1 << 20) as f64,
            t.as_secs_f64() / kiln.as_secs_f64()
        );
    }
    if let Some(fastest) = rows[2..].iter().map(|r| r.1).min() {
        let ratio = kiln.as_secs_f64() / fastest.as_secs_f64();
        println!(
            "kiln takes {:.2} of the fastest other tool's time (goal: at most 0.50): {}",
            ratio,
            if ratio <= 0.5 { "met" } else { "NOT met" }
        );
    }
    Ok(())
}
