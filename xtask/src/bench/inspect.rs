//! `cargo xtask bench` (inspect part): `kiln inspect --json` against `file` over the same
//! files (/usr/bin and /usr/lib/x86_64-linux-gnu), warm page cache and cold (the page cache
//! dropped before each run with `echo 3 > /proc/sys/vm/drop_caches`, which needs root: the
//! benchmark alone does this, never a test), in one run. Prints both wall times (median of
//! several runs; every cold run with its load), each tool's CPU time, and for cold runs the
//! bytes each read from disk (`ru_inblock`: its own reads only) and its major page faults;
//! kiln's system calls per file (warm, strace -c); the ratios and kiln's peak RSS. Fails
//! when kiln misses its goals: at most 0.1x `file`'s time warm and cold (#14), under 64 MiB
//! peak RSS. Then the hostile case: `kiln inspect` of an image whose 2 MiB gzip layer
//! expands to 2 GiB, with kiln's peak RSS next to GNU tar listing the same layer (a
//! streaming reader), goal < 96 MiB.
//!
//! Cold runs also replay kiln's planned reads alone (the floor: what the disk takes to
//! deliver the bytes kiln reads, with no parsing) and time a cold `kiln --version` (loading
//! kiln itself). `KILN_BENCH_COLD_RUNS=N` sets the cold runs (default 3);
//! `KILN_BENCH_BASELINE=/path/to/kiln` alternates a second kiln with the measured one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::load_average;

const DIRS: [&str; 2] = ["/usr/bin", "/usr/lib/x86_64-linux-gnu"];
const RUNS: usize = 7;
/// Cold runs drop the whole machine's page cache each time: fewer (`KILN_BENCH_COLD_RUNS`).
const COLD_RUNS: usize = 3;
const MAX_RATIO: f64 = 0.1;
const MAX_RSS_KIB: u64 = 64 * 1024;
/// Peak RSS goal on the gzip bomb: independent of the 2 GiB the layer expands to.
const MAX_BOMB_RSS_KIB: u64 = 96 * 1024;

/// The cold runs: `KILN_BENCH_COLD_RUNS`, else [`COLD_RUNS`].
fn cold_runs_wanted() -> usize {
    std::env::var("KILN_BENCH_COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(COLD_RUNS)
}

/// Writes an OCI layout whose one gzip layer holds a 2 GiB file of zeros (and a small file
/// first), computing the diff_id on the way; prints the layer's size.
const BOMB_SCRIPT: &str = r#"
import gzip, hashlib, io, json, os, sys, tarfile
out, size = sys.argv[1], int(sys.argv[2])
blobs = os.path.join(out, "blobs", "sha256"); os.makedirs(blobs, exist_ok=True)
class Tee(io.RawIOBase):
    def __init__(s, f): s.f, s.h = f, hashlib.sha256()
    def writable(s): return True
    def write(s, b): s.h.update(b); return s.f.write(b)
raw = io.BytesIO()
gz = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0)
tee = Tee(gz)
class Zeros(io.RawIOBase):
    def __init__(s, n): s.n = n
    def readable(s): return True
    def readinto(s, b):
        k = min(len(b), s.n); b[:k] = bytes(k); s.n -= k; return k
with tarfile.open(fileobj=tee, mode="w|", format=tarfile.GNU_FORMAT) as t:
    i = tarfile.TarInfo("etc/motd"); data = b"hello"; i.size = len(data); t.addfile(i, io.BytesIO(data))
    i = tarfile.TarInfo("var/zeros"); i.size = size; t.addfile(i, io.BufferedReader(Zeros(size), 1 << 20))
gz.close()
layer = raw.getvalue()
def put(b):
    d = hashlib.sha256(b).hexdigest(); open(os.path.join(blobs, d), "wb").write(b); return "sha256:" + d, len(b)
ld, ls = put(layer)
cd, cs = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + tee.h.hexdigest()]}}).encode())
md, ms = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]}).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "bomb"}}]},
    open(os.path.join(out, "index.json"), "w"))
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
print(ls, os.path.join(blobs, ld[7:]))
"#;

/// `kiln inspect` on a gzip bomb: peak RSS against GNU tar streaming the same layer.
fn bomb(kiln: &Path) -> anyhow::Result<Option<String>> {
    const EXPANDED: u64 = 2 << 30;
    let tmp = tempfile::tempdir().context("creating a temp dir")?;
    let layout = tmp.path().join("bomb");
    let out = Command::new("python3")
        .args(["-c", BOMB_SCRIPT])
        .arg(&layout)
        .arg(EXPANDED.to_string())
        .output()
        .context("running python3 to write the gzip bomb")?;
    if !out.status.success() {
        bail!(
            "writing the gzip bomb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (layer_size, layer_path) = line.split_once(' ').context("bomb script output")?;
    let kiln_args = vec![
        "inspect".to_string(),
        format!("oci:{}:bomb", layout.display()),
    ];
    let kiln_rss = peak_rss_kib(kiln, &kiln_args)?;
    let tar_rss = peak_rss_kib(
        Path::new("tar"),
        &["-tzf".to_string(), layer_path.to_string()],
    )?;
    println!(
        "gzip bomb: {layer_size}-byte gzip layer expanding to {} MiB",
        EXPANDED >> 20
    );
    println!(
        "  kiln inspect peak RSS: {:>8.1} MiB (goal < {} MiB)",
        kiln_rss as f64 / 1024.0,
        MAX_BOMB_RSS_KIB / 1024
    );
    println!(
        "  tar -tzf peak RSS    : {:>8.1} MiB",
        tar_rss as f64 / 1024.0
    );
    println!(
        "  ratio kiln/tar       : {:>8.2}",
        kiln_rss as f64 / tar_rss.max(1) as f64
    );
    Ok((kiln_rss >= MAX_BOMB_RSS_KIB).then(|| {
        format!("kiln peaked at {kiln_rss} KiB on the gzip bomb (goal < {MAX_BOMB_RSS_KIB})")
    }))
}

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

/// What one run cost, from `wait4`'s resource usage.
#[derive(Clone, Copy)]
struct Run {
    wall: Duration,
    user: Duration,
    sys: Duration,
    /// Peak RSS, KiB.
    rss_kib: u64,
    /// Page faults that waited on the disk.
    major_faults: u64,
    /// Bytes the process's reads asked of the block layer (`ru_inblock`: its own reads,
    /// read-ahead and page faults included; other processes' I/O is not counted).
    disk_read: u64,
}

impl Run {
    /// "CPU 0.20 user + 0.31 sys, 251 MiB read from disk, 1 major fault".
    fn costs(&self, cold: bool) -> String {
        let mut s = format!(
            "CPU {:.2} user + {:.2} sys",
            self.user.as_secs_f64(),
            self.sys.as_secs_f64()
        );
        if cold {
            s += &format!(
                ", {:.0} MiB read from disk, {} major faults",
                self.disk_read as f64 / (1 << 20) as f64,
                self.major_faults
            );
        }
        s
    }
}

fn duration(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Run `cmd` to the end (output discarded) and measure it.
fn run_once(cmd: &mut Command) -> anyhow::Result<Run> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let mut status = 0;
    // SAFETY: rusage is plain data the call fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose pid `spawn` just returned; std's `Child` is not
    // waited on afterwards (dropping it neither waits nor kills).
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if pid < 0 {
        bail!("waiting for {cmd:?}: {}", std::io::Error::last_os_error());
    }
    // kiln exits 3 here (the host's files are dynamic); only a crash or exit 1 is wrong.
    if !libc::WIFEXITED(status) || !matches!(libc::WEXITSTATUS(status), 0 | 3) {
        bail!("{cmd:?} failed (wait status {status:#x})");
    }
    Ok(Run {
        wall,
        user: duration(usage.ru_utime),
        sys: duration(usage.ru_stime),
        rss_kib: usage.ru_maxrss as u64,
        major_faults: usage.ru_majflt as u64,
        disk_read: usage.ru_inblock as u64 * 512,
    })
}

/// The run with the median wall time.
fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.wall);
    runs[runs.len() / 2]
}

/// Drop the page cache (and dentries and inodes); false when this process may not.
fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// kiln and `file` each started with a cold page cache, alternating, every run printed;
/// the median runs, or `None` when the cache cannot be dropped (not root).
fn cold_runs(
    kiln: &dyn Fn() -> Command,
    file: &dyn Fn() -> Command,
    floor: &dyn Fn() -> (Duration, u64),
    kiln_version: &dyn Fn() -> Command,
    baseline: Option<&dyn Fn() -> Command>,
) -> anyhow::Result<Option<Cold>> {
    let (mut k, mut f, mut fl, mut start) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut base = Vec::new();
    for i in 0..cold_runs_wanted() {
        if !drop_caches() {
            return Ok(None);
        }
        let kr = run_once(&mut kiln())?;
        let mut base_wall = String::new();
        if let Some(b) = baseline {
            drop_caches();
            let br = run_once(&mut b())?;
            base_wall = format!(" | baseline {:.3} s", br.wall.as_secs_f64());
            base.push(br);
        }
        drop_caches();
        let fr = run_once(&mut file())?;
        drop_caches();
        let (floor_wall, floor_read) = floor();
        drop_caches();
        let sr = run_once(&mut kiln_version())?;
        println!(
            "    run {}: kiln {:.3} s ({}){base_wall} | file {:.3} s ({}) | floor {:.3} s ({:.0} MiB) | kiln --version {:.3} s | load {}",
            i + 1,
            kr.wall.as_secs_f64(),
            kr.costs(true),
            fr.wall.as_secs_f64(),
            fr.costs(true),
            floor_wall.as_secs_f64(),
            floor_read as f64 / (1 << 20) as f64,
            sr.wall.as_secs_f64(),
            load_average()
        );
        k.push(kr);
        f.push(fr);
        fl.push(floor_wall);
        start.push(sr);
    }
    Ok(Some(Cold {
        kiln: median_run(k),
        file: median_run(f),
        floor: super::median(fl),
        start: median_run(start),
        baseline: (!base.is_empty()).then(|| median_run(base)),
    }))
}

/// The median cold runs: kiln, `file`, the floor (kiln's reads replayed alone) and a
/// cold `kiln --version` (what loading kiln itself costs).
struct Cold {
    kiln: Run,
    file: Run,
    floor: Duration,
    start: Run,
    /// `KILN_BENCH_BASELINE`: another kiln, alternated with the one measured.
    baseline: Option<Run>,
}

/// What kiln asks of the disk for the bench's files, worked out warm by kiln's own planner
/// (`kiln::elf::cold_read_ranges`): the ranges per file, their bytes and how many.
struct ReadPlan {
    ranges: std::collections::HashMap<PathBuf, Vec<std::ops::Range<u64>>>,
    bytes: u64,
    count: usize,
}

fn read_plan(files: &[PathBuf]) -> ReadPlan {
    let mut plan = ReadPlan {
        ranges: Default::default(),
        bytes: 0,
        count: 0,
    };
    for f in files {
        let Ok(r) = kiln::elf::cold_read_ranges(f) else {
            continue;
        };
        plan.bytes += r.iter().map(|r| r.end - r.start).sum::<u64>();
        plan.count += r.len();
        plan.ranges.insert(f.clone(), r);
    }
    plan
}

/// The floor: the same directories walked the same way (sorted, while `readers` threads
/// read what it finds, as many as kiln's inspector uses), each file opened and exactly
/// kiln's planned ranges asked for at once (`fadvise`) and read with `pread`; no parsing,
/// no output, no process start. The wall time and the bytes read from disk.
fn replay(dirs: &[&str], plan: &ReadPlan, readers: usize) -> (Duration, u64) {
    fn walk(dir: &Path, found: &mut dyn FnMut(PathBuf)) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut children: Vec<_> = rd
            .flatten()
            .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
            .collect();
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, t) in children {
            if t.is_dir() {
                walk(&path, found);
            } else if t.is_file() {
                found(path);
            }
        }
    }
    let read = |path: PathBuf| {
        use std::os::unix::fs::FileExt;
        let (Ok(file), Some(ranges)) = (std::fs::File::open(&path), plan.ranges.get(&path)) else {
            return;
        };
        for r in ranges {
            kiln::fsutil::prefetch(&file, r.clone());
        }
        // Read in pieces through one buffer (kiln maps large files instead: the copy costs
        // about what its page faults do).
        let mut buf = vec![0u8; 256 << 10];
        for r in ranges {
            let mut at = r.start;
            while at < r.end {
                let n = buf.len().min((r.end - at) as usize);
                if file.read_exact_at(&mut buf[..n], at).is_err() {
                    break;
                }
                at += n as u64;
            }
        }
    };
    let inblock = || {
        // SAFETY: rusage is plain data the call fills in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: fills `usage` for this process.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        usage.ru_inblock as u64 * 512
    };
    let before = inblock();
    let start = Instant::now();
    kiln::par::par_map_fed(
        readers,
        |found: &mut dyn FnMut(PathBuf)| {
            for d in dirs {
                walk(Path::new(d), found);
            }
        },
        read,
    );
    (start.elapsed(), inblock() - before)
}

/// System calls per file of one warm kiln run, from `strace -f -c` (a profile line for the
/// report; `None` when strace is missing or fails).
fn syscalls_per_file(kiln: &dyn Fn() -> Command, files: usize) -> Option<String> {
    let out = tempfile::NamedTempFile::new().ok()?;
    let k = kiln();
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out.path())
        .arg(k.get_program())
        .args(k.get_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    if !matches!(status.code(), Some(0) | Some(3)) {
        return None;
    }
    let text = std::fs::read_to_string(out.path()).ok()?;
    // Rows: "% time  seconds  usecs/call  calls  [errors]  syscall"; the last is "total".
    let mut rows: Vec<(u64, String)> = Vec::new();
    let mut total = 0;
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(calls)) = (cols.last(), cols.get(3)) else {
            continue;
        };
        let Ok(calls) = calls.parse::<u64>() else {
            continue;
        };
        if *name == "total" {
            total = calls;
        } else {
            rows.push((calls, name.to_string()));
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let top: Vec<String> = rows
        .iter()
        .take(8)
        .map(|(n, name)| format!("{name} {:.2}", *n as f64 / files as f64))
        .collect();
    Some(format!(
        "{:.1} per file ({total} in all; {})",
        total as f64 / files as f64,
        top.join(", ")
    ))
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

pub fn run_bench(kiln: &Path) -> anyhow::Result<()> {
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
        let mut c = Command::new(kiln);
        c.args(&kiln_args);
        c
    };
    let file_cmd = || {
        let mut c = Command::new("file");
        c.arg("-f").arg(&list);
        c
    };

    let bytes: u64 = files
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "inspect benchmark over {} ({} regular files, {} MiB), load {}",
        dirs.join(" "),
        files.len(),
        bytes >> 20,
        load_average()
    );

    // Warm both (page cache, dentries), then alternate so drift hits both alike.
    run_once(&mut kiln_cmd())?;
    run_once(&mut file_cmd())?;
    let (mut k, mut f) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        k.push(run_once(&mut kiln_cmd())?);
        f.push(run_once(&mut file_cmd())?);
    }
    let mut rss = k.iter().map(|r| r.rss_kib).max().unwrap_or(0);
    let (k, f) = (median_run(k), median_run(f));
    let ratio = k.wall.as_secs_f64() / f.wall.as_secs_f64();
    let mut missed = Vec::new();
    println!(
        "  warm page cache (median of {RUNS}), load {}:",
        load_average()
    );
    println!(
        "  kiln inspect --json : {:>8.3} s ({})",
        k.wall.as_secs_f64(),
        k.costs(false)
    );
    println!(
        "  file                : {:>8.3} s ({})",
        f.wall.as_secs_f64(),
        f.costs(false)
    );
    println!("  ratio kiln/file     : {ratio:>8.3}   (goal <= {MAX_RATIO}, warm)");
    if let Some(calls) = syscalls_per_file(&kiln_cmd, files.len()) {
        println!("  kiln system calls   : {calls} (warm, strace -f -c)");
    }

    println!(
        "  cold page cache (echo 3 > /proc/sys/vm/drop_caches before each run, as root; median of {}):",
        cold_runs_wanted()
    );
    let plan = read_plan(&files);
    let readers = 4 * kiln::par::cpus();
    let floor = || replay(&dirs, &plan, readers);
    let kiln_version = || {
        let mut c = Command::new(kiln);
        c.arg("--version");
        c
    };
    // KILN_BENCH_BASELINE=/path/to/kiln: a second kiln (e.g. main's) alternated with the
    // measured one in the cold runs, so a change is judged under the same load.
    let baseline_exe = std::env::var_os("KILN_BENCH_BASELINE").map(PathBuf::from);
    let baseline_cmd = || {
        let mut c = Command::new(baseline_exe.as_deref().unwrap_or(kiln));
        c.args(&kiln_args);
        c
    };
    let baseline: Option<&dyn Fn() -> Command> = baseline_exe.as_ref().map(|_| &baseline_cmd as _);
    match cold_runs(&kiln_cmd, &file_cmd, &floor, &kiln_version, baseline)? {
        Some(cold) => {
            let (kc, fc) = (cold.kiln, cold.file);
            rss = rss.max(kc.rss_kib);
            let r = kc.wall.as_secs_f64() / fc.wall.as_secs_f64();
            println!(
                "  kiln inspect --json : {:>8.3} s ({})",
                kc.wall.as_secs_f64(),
                kc.costs(true)
            );
            println!(
                "  file                : {:>8.3} s ({})",
                fc.wall.as_secs_f64(),
                fc.costs(true)
            );
            println!("  ratio kiln/file     : {r:>8.3}   (goal <= {MAX_RATIO}, cold)");
            if let (Some(b), Some(exe)) = (cold.baseline, &baseline_exe) {
                println!(
                    "  baseline kiln       : {:>8.3} s ({}; {}), kiln/baseline {:.3}, baseline/file {:.3}",
                    b.wall.as_secs_f64(),
                    exe.display(),
                    b.costs(true),
                    kc.wall.as_secs_f64() / b.wall.as_secs_f64(),
                    b.wall.as_secs_f64() / fc.wall.as_secs_f64()
                );
            }
            println!(
                "  floor               : {:>8.3} s (kiln's {} planned reads, {:.0} MiB, replayed alone by {readers} readers: walk, open, fadvise, pread; no parsing)",
                cold.floor.as_secs_f64(),
                plan.count,
                plan.bytes as f64 / (1 << 20) as f64
            );
            println!(
                "  kiln --version      : {:>8.3} s (loading kiln itself, cold: {:.0} MiB read)",
                cold.start.wall.as_secs_f64(),
                cold.start.disk_read as f64 / (1 << 20) as f64
            );
            println!(
                "  kiln / floor        : {:>8.2}x   (kiln - floor - start = {:.3} s of parsing, searching, output and waits the replay does not have)",
                kc.wall.as_secs_f64() / cold.floor.as_secs_f64(),
                kc.wall.as_secs_f64() - cold.floor.as_secs_f64() - cold.start.wall.as_secs_f64()
            );
            if r > MAX_RATIO {
                missed.push(format!(
                    "kiln took {r:.3}x file's time with a cold page cache (goal {MAX_RATIO})"
                ));
            }
        }
        None => {
            println!("  skipped (dropping the page cache needs root: /proc/sys/vm/drop_caches)")
        }
    }

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

    println!(
        "  kiln peak RSS       : {:>8.1} MiB over all runs (goal < {} MiB)",
        rss as f64 / 1024.0,
        MAX_RSS_KIB / 1024
    );
    println!("  kiln {summary}");
    if ratio > MAX_RATIO {
        missed.push(format!(
            "kiln took {ratio:.2}x file's time (goal {MAX_RATIO})"
        ));
    }
    if rss >= MAX_RSS_KIB {
        missed.push(format!("kiln peaked at {rss} KiB (goal < {MAX_RSS_KIB})"));
    }
    missed.extend(bomb(kiln)?);
    if !missed.is_empty() {
        bail!("benchmark goals missed: {}", missed.join("; "));
    }
    Ok(())
}
