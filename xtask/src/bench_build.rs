//! Benchmark: kiln's overhead over the plain `cargo build --target` it drives, for
//! examples/hello-rust on linux/arm64, warm caches, no-op rebuild (nothing changed, image
//! already written). Goal: a no-op `kiln build` under 0.5 s.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use kiln::config::CargoConfig;
use kiln::target::Targets;

use crate::{root, run};

const RUNS: usize = 10;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_runs(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    Ok(median(times))
}

pub fn run_bench(kiln_exe: &Path) -> anyhow::Result<()> {
    let project_dir = root().join("examples/hello-rust");
    let out = root().join("target/bench/hello-rust-oci");
    let dist = root().join("target/bench/dist");
    let kiln_build = || {
        let mut c = Command::new(kiln_exe);
        c.arg("build")
            .arg(&project_dir)
            .args([
                "--release",
                "--platform",
                "linux/arm64",
                "--quiet",
                "--out-dir",
            ])
            .arg(&dist)
            .arg("--output")
            .arg(format!("oci:{}", out.display()));
        c
    };
    // Warm up: the first build compiles everything and writes the image.
    run(&mut kiln_build())?;

    // The exact cargo command kiln runs for arm64, with the same environment.
    let flags = CargoConfig {
        release: true,
        ..Default::default()
    };
    let project = kiln::builders::rust::plan(&project_dir, &flags, &[], None)?;
    let target = Targets::builtin()
        .find("linux/arm64")
        .context("arm64 target")?
        .clone();
    let zig = kiln::toolchain::find_zig()?;
    let wrappers = kiln::toolchain::write_wrappers(
        &project.target_dir.join("kiln/wrappers"),
        kiln_exe,
        &zig,
        &target,
    )?;
    let plan = kiln::toolchain::RustPlan {
        toolchain: None,
        build_std: false,
    };
    let manifest = kiln::builders::rust::manifest_path(&project_dir, &flags);
    let cargo_cmd =
        kiln::builders::rust::build_command(&project, &manifest, &flags, &target, &plan, &wrappers);

    let cargo_t = time_runs(|| {
        cargo_cmd.run()?;
        Ok(())
    })?;
    let kiln_t = time_runs(|| {
        // Its summary table would be printed ten times.
        let status = kiln_build().stdout(std::process::Stdio::null()).status()?;
        ensure!(status.success(), "kiln build failed");
        Ok(())
    })?;
    let ratio = kiln_t.as_secs_f64() / cargo_t.as_secs_f64();
    println!("\n== no-op rebuild, examples/hello-rust, linux/arm64, median of {RUNS} ==");
    println!(
        "  cargo build --target (what kiln drives): {:>7.1} ms",
        cargo_t.as_secs_f64() * 1e3
    );
    println!(
        "  kiln build (+ verify + image):           {:>7.1} ms",
        kiln_t.as_secs_f64() * 1e3
    );
    println!("  ratio kiln / cargo:                      {ratio:>7.2}x");
    println!(
        "  goal: kiln no-op under 500 ms -> {}",
        if kiln_t < Duration::from_millis(500) {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
