//! `cargo xtask bench` (inspect part): `kiln inspect --json` against `file` over the same
//! files (/usr/bin and /usr/lib/x86_64-linux-gnu), both warm, in one run. Prints both wall
//! times (median of several runs), their ratio and kiln's peak RSS, and fails when kiln
//! misses its goals: at most half of `file`'s time, under 64 MiB peak RSS.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const DIRS: [&str; 2] = ["/usr/bin", "/usr/lib/x86_64-linux-gnu"];
const RUNS: usize = 7;
const MAX_RATIO: f64 = 0.5;
const MAX_RSS_KIB: u64 = 64 * 1024;

/// The regular files under `dir`, not following symlinks: the same set kiln's walk visits.
fn regular_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => regular_files(&e.path(), out),
            Ok(t) if t.is_file() => out.push(e.path()),
            _ => {}
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_once(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    let took = start.elapsed();
    // kiln exits 3 here (the host's files are dynamic); only a crash or exit 1 is wrong.
    if !matches!(status.code(), Some(0) | Some(3)) {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(took)
}

/// Peak RSS in KiB of one run, from GNU time's `%M`.
fn peak_rss_kib(program: &Path, args: &[String]) -> anyhow::Result<u64> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .context("running /usr/bin/time (install it with `apt-get install time`)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("no peak RSS in /usr/bin/time output: {stderr}"))
}

pub fn run() -> anyhow::Result<()> {
    let root = crate::root();
    let status = Command::new("cargo")
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kiln",
            "--bin",
            "kiln",
        ])
        .status()
        .context("building kiln")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let kiln = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release/kiln");
    if Command::new("file").arg("--version").output().is_err() {
        bail!("`file` not found: install it with `apt-get install file`");
    }

    let dirs: Vec<&str> = DIRS
        .iter()
        .copied()
        .filter(|d| Path::new(d).is_dir())
        .collect();
    if dirs.is_empty() {
        bail!("none of {DIRS:?} exists on this machine");
    }
    let mut files = Vec::new();
    for d in &dirs {
        regular_files(Path::new(d), &mut files);
    }
    // `file -f LIST` reads the names from a file: no argument-length limit.
    let list = std::env::temp_dir().join(format!("kiln-bench-files-{}", std::process::id()));
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    std::fs::write(&list, names.join("\n") + "\n").context("writing the file list")?;

    let kiln_args: Vec<String> = ["inspect", "--json"]
        .iter()
        .map(|s| s.to_string())
        .chain(dirs.iter().map(|s| s.to_string()))
        .collect();
    let kiln_cmd = || {
        let mut c = Command::new(&kiln);
        c.args(&kiln_args);
        c
    };
    let file_cmd = || {
        let mut c = Command::new("file");
        c.arg("-f").arg(&list);
        c
    };

    // Warm both (page cache, dentries), then alternate so drift hits both alike.
    time_once(&mut kiln_cmd())?;
    time_once(&mut file_cmd())?;
    let (mut k, mut f) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        k.push(time_once(&mut kiln_cmd())?);
        f.push(time_once(&mut file_cmd())?);
    }
    let (k, f) = (median(k), median(f));
    let rss = peak_rss_kib(&kiln, &kiln_args)?;

    // What kiln's report covered, to show it did the full job.
    let out = kiln_cmd()
        .output()
        .context("running kiln for its summary")?;
    let doc = String::from_utf8_lossy(&out.stdout);
    let summary: String = doc
        .lines()
        .skip_while(|l| !l.contains("\"summary\""))
        .take(9)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let _ = std::fs::remove_file(&list);

    let ratio = k.as_secs_f64() / f.as_secs_f64();
    println!(
        "inspect benchmark over {} ({} regular files)",
        dirs.join(" "),
        files.len()
    );
    println!(
        "  kiln inspect --json : {:>8.3} s (median of {RUNS}, warm)",
        k.as_secs_f64()
    );
    println!(
        "  file                : {:>8.3} s (median of {RUNS}, warm)",
        f.as_secs_f64()
    );
    println!("  ratio kiln/file     : {ratio:>8.3}   (goal <= {MAX_RATIO})");
    println!(
        "  kiln peak RSS       : {:>8.1} MiB (goal < {} MiB)",
        rss as f64 / 1024.0,
        MAX_RSS_KIB / 1024
    );
    println!("  kiln {summary}");
    let mut missed = Vec::new();
    if ratio > MAX_RATIO {
        missed.push(format!(
            "kiln took {ratio:.2}x file's time (goal {MAX_RATIO})"
        ));
    }
    if rss >= MAX_RSS_KIB {
        missed.push(format!("kiln peaked at {rss} KiB (goal < {MAX_RSS_KIB})"));
    }
    if !missed.is_empty() {
        bail!("benchmark goals missed: {}", missed.join("; "));
    }
    Ok(())
}
