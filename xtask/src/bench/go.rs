//! Benchmark: `kiln build` of examples/hello-go for four platforms against the same four
//! `go build` commands run one after another by a shell loop, warm caches. Two cases: a
//! relink (outputs deleted, as after an edit that leaves the build cache valid) and a no-op
//! (nothing to do). kiln runs the targets in parallel and then verifies each binary; the goal
//! is not to be slower than the loop on 2 cores.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use kiln::target::Targets;

use super::median;
use crate::{root, run};

const RUNS: usize = 5;
const PLATFORMS: &[&str] = &[
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/riscv64",
];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One contender: how to prepare a run (untimed) and the command to time.
struct Contender<'a> {
    label: String,
    before: Box<dyn Fn() -> anyhow::Result<()> + 'a>,
    command: Box<dyn Fn() -> Command + 'a>,
}

/// Median wall time of each contender over `RUNS` rounds. Rounds interleave the contenders,
/// so load from other processes on the machine falls on all of them alike.
fn race(contenders: &[Contender]) -> anyhow::Result<Vec<Duration>> {
    let mut times = vec![Vec::with_capacity(RUNS); contenders.len()];
    for _ in 0..RUNS {
        for (c, t) in contenders.iter().zip(&mut times) {
            (c.before)()?;
            let mut cmd = (c.command)();
            cmd.stdout(std::process::Stdio::null());
            let start = Instant::now();
            let status = cmd.status()?;
            t.push(start.elapsed());
            ensure!(status.success(), "`{}` failed", crate::show(&cmd));
        }
    }
    Ok(times.into_iter().map(median).collect())
}

/// The shell loop a Makefile would hold: one `go build` per platform, with the flags kiln
/// passes (static, trimmed, stripped, no VCS stamp).
fn loop_script(go: &Path, project: &Path, out: &Path) -> anyhow::Result<String> {
    let table = Targets::builtin();
    let mut rows = Vec::new();
    for p in PLATFORMS {
        let t = table
            .find(p)
            .with_context(|| format!("{p} in targets.toml"))?;
        rows.push(format!(
            "{}:{}:{}",
            t.name,
            t.goarch,
            t.goarm.clone().unwrap_or_default()
        ));
    }
    Ok(format!(
        "set -e\ncd {project}\nfor row in {rows}; do\n  IFS=:; set -- $row; unset IFS\n  \
         GOOS=linux GOARCH=$2 GOARM=$3 CGO_ENABLED=0 {go} build -trimpath -buildvcs=false \
         -ldflags='-s -w' -o {out}/$1/hello-go .\ndone\n",
        rows = rows.join(" "),
        go = go.display(),
        project = project.display(),
        out = out.display(),
    ))
}

/// Remove a directory of outputs, if it is there.
fn clear(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

pub fn run_bench(kiln_exe: &Path) -> anyhow::Result<()> {
    let project = root().join("examples/hello-go");
    let bench = root().join("target/bench/go");
    let target_dir = bench.join("target");
    let dist = bench.join("dist");
    let loop_out = bench.join("loop");
    let kiln_outputs = target_dir.join("kiln/go");
    let go = kiln::toolchain::go::find_go()?;
    // The loop a user writes calls `go` from PATH; when that is a launcher script (pyenv,
    // asdf, the wheel's entry point) kiln resolves it once per build, so the loop is also
    // timed with the resolved binary, which is the fair comparison of the builds themselves.
    let mut loops = vec![(
        "shell loop, resolved go binary".to_string(),
        loop_script(&go.path, &project, &loop_out)?,
    )];
    if let Some(on_path) = which_go()
        && std::fs::canonicalize(&on_path).ok() != std::fs::canonicalize(&go.path).ok()
    {
        loops.push((
            format!("shell loop, `go` on PATH ({})", on_path.display()),
            loop_script(Path::new("go"), &project, &loop_out)?,
        ));
    }

    let kiln_build = || {
        let mut c = Command::new(kiln_exe);
        c.arg("build")
            .arg(&project)
            .args(["--platform", &PLATFORMS.join(","), "--quiet"])
            .arg("--target-dir")
            .arg(&target_dir)
            .arg("--out-dir")
            .arg(&dist);
        c
    };
    let shell = |script: &str| {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    };
    // Warm up: both fill the same GOCACHE for all four platforms.
    run(&mut kiln_build())?;
    run(&mut shell(&loops[0].1))?;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n== examples/hello-go for {} ({} platforms), warm GOCACHE, {cores} cores, median of {RUNS} ==",
        PLATFORMS.join(","),
        PLATFORMS.len()
    );
    for (case, relink) in [
        ("relink (outputs deleted, build cache warm)", true),
        ("no-op (nothing changed)", false),
    ] {
        let prepare =
            |dir: &Path| -> anyhow::Result<()> { if relink { clear(dir) } else { Ok(()) } };
        let mut contenders = vec![Contender {
            label: "kiln build (parallel + verify)".into(),
            before: Box::new(|| prepare(&kiln_outputs)),
            command: Box::new(kiln_build),
        }];
        // (kiln contender, loop contender) pairs whose ratio is the result.
        let mut pairs = Vec::new();
        for (label, script) in &loops {
            pairs.push((0, contenders.len()));
            contenders.push(Contender {
                label: label.clone(),
                before: Box::new(|| prepare(&loop_out)),
                command: Box::new(|| shell(script)),
            });
        }
        if loops.len() > 1 {
            // kiln given the resolved binary: what it costs where `go` on PATH is a real
            // binary (the launcher is resolved once per kiln run otherwise).
            pairs.push((contenders.len(), 1));
            contenders.push(Contender {
                label: "kiln build, KILN_GO=resolved go binary".into(),
                before: Box::new(|| prepare(&kiln_outputs)),
                command: Box::new(|| {
                    let mut c = kiln_build();
                    c.env("KILN_GO", &go.path);
                    c
                }),
            });
        }
        let times = race(&contenders)?;
        println!("  {case}:");
        for (c, t) in contenders.iter().zip(&times) {
            println!("    {:<60} {:>8.1} ms", c.label, ms(*t));
        }
        for (k, l) in pairs {
            let ratio = times[k].as_secs_f64() / times[l].as_secs_f64();
            println!(
                "    {} / {}: {ratio:.2}x  goal <= 1.00 -> {}",
                contenders[k].label,
                contenders[l].label,
                if ratio <= 1.0 { "met" } else { "NOT met" }
            );
        }
    }
    Ok(())
}

/// `go` on PATH, if any.
fn which_go() -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
}
