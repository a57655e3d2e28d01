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

const PLATFORMS: [&str; 4] = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/riscv64"];
const SIZE: usize = 20 << 20;
const RUNS: usize = 3;

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
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
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
            .args(["build", "-q", "--no-cache", "--platform", p, "-t", &tag, "-f"])
            .arg(ctx.join(format!("Dockerfile.{i}")))
            .arg(ctx))?;
        tags.push(tag);
    }
    sh(Command::new("docker")
        .args(["save", "-o"])
        .arg(out)
        .args(&tags))?;
    let _ = Command::new("docker").args(["rmi", "-f"]).args(&tags).output();
    Ok(())
}

/// Best of `RUNS` runs of `f(run, fresh output path)`.
fn best(
    name: &str,
    dir: &Path,
    mut f: impl FnMut(usize, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for run in 0..RUNS {
        let out = dir.join(format!("{name}-{run}"));
        let t = Instant::now();
        f(run, &out).with_context(|| format!("{name} run {run}"))?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[0])
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
        "packing a {} MiB static binary for {} platforms ({}), best of {RUNS} runs",
        SIZE >> 20,
        PLATFORMS.len(),
        PLATFORMS.join(", ")
    );

    let kiln = best("kiln", tmp.path(), |_, out| {
        kiln_once(&bins, out, Compression::Gzip)
    })?;
    let zstd = best("kiln-zstd", tmp.path(), |_, out| {
        kiln_once(&bins, out, Compression::Zstd)
    })?;
    let mut rows = vec![
        ("kiln (library, gzip)", kiln, size_of(&tmp.path().join("kiln-0"))),
        ("kiln (library, zstd)", zstd, size_of(&tmp.path().join("kiln-zstd-0"))),
    ];
    if have("umoci") {
        let t = best("umoci", tmp.path(), |_, out| umoci_once(&bins, out))?;
        rows.push(("umoci init/new/insert/config", t, size_of(&tmp.path().join("umoci-0"))));
    } else {
        println!("umoci: not installed (apt-get install -y umoci), skipped");
    }
    let docker_ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if docker_ok {
        let t = best("docker", tmp.path(), |run, out| docker_once(&ctx, out, run))?;
        rows.push(("docker build x4 + save", t, size_of(&tmp.path().join("docker-0"))));
    } else {
        println!("docker: no engine answers (apt-get install -y docker.io; dockerd &), skipped");
    }

    println!("{:<30} {:>10} {:>12} {:>10}", "tool", "seconds", "output MiB", "vs kiln");
    for (name, t, size) in &rows {
        println!(
            "{name:<30} {:>10.3} {:>12.1} {:>9.1}x",
            t.as_secs_f64(),
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
