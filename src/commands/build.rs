//! `kiln build`: plan → build (one stage per target, in parallel) → inspect gate → smoke →
//! images. Prints a summary table, or one JSON object per artifact / image / index.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::json;

use crate::build::{self, Artifact, Plan, Stage, c, go, rust};
use crate::cli::BuildArgs;
use crate::commands::Ctx;
use crate::config::{self, BuildConfig};
use crate::error::{TargetsFailed, UsageError};
use crate::progress::Progress;

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub artifacts: Vec<Artifact>,
    /// `sha256:…` of the image index, when an image was written.
    pub index_digest: Option<String>,
}

pub fn run(args: &BuildArgs, ctx: &Ctx) -> anyhow::Result<BuildOutcome> {
    let cfg = config::resolve_build(args)?;
    let progress = Progress::new(ctx.quiet || ctx.json);
    let outcome = build(&cfg, &progress)?;
    print_outcome(&outcome, &cfg, ctx)?;
    Ok(outcome)
}

/// Build every target of `cfg`; the library entry point (no printing but progress).
pub fn build(cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<BuildOutcome> {
    if !cfg.outputs.is_empty() {
        validate_outputs(&cfg.outputs)?;
    }
    let plan = prepare(cfg, progress)?;
    let stages = &plan.stages;

    let results: Mutex<Vec<(usize, anyhow::Result<Vec<Artifact>>)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.min(stages.len()) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(stage) = stages.get(i) else {
                        break;
                    };
                    let r = run_stage(stage, cfg, progress);
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);

    let mut artifacts = Vec::new();
    let mut failures = Vec::new();
    for (i, r) in results {
        match r {
            Ok(a) => artifacts.extend(a),
            Err(e) => failures.push((stages[i].target.platform.to_string(), e)),
        }
    }
    if failures.len() == 1 {
        let (platform, e) = failures.remove(0);
        return Err(e.context(format!("{platform} failed")));
    }
    if !failures.is_empty() {
        return Err(TargetsFailed {
            failures,
            total: stages.len(),
        }
        .into());
    }

    let index_digest = if cfg.outputs.is_empty() {
        None
    } else {
        Some(pack_images(cfg, &artifacts, &plan, progress)?)
    };
    Ok(BuildOutcome {
        artifacts,
        index_digest,
    })
}

/// Detect the project's language and plan its build.
fn prepare(cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<Plan> {
    if rust::detect(&cfg.project_dir, &cfg.cargo) {
        return rust::prepare(cfg, progress);
    }
    if go::detect(&cfg.project_dir) {
        return go::prepare(cfg, progress);
    }
    if c::detect(&cfg.project_dir) {
        return c::prepare(cfg, progress);
    }
    Err(not_a_project(&cfg.project_dir).into())
}

/// One target: build, gate, copy to dist, smoke.
fn run_stage(
    stage: &Stage,
    cfg: &BuildConfig,
    progress: &Progress,
) -> anyhow::Result<Vec<Artifact>> {
    let target = &stage.target;
    let task = progress.task(&target.platform.to_string());
    task.set("building");
    let built = (stage.run)()?;
    let mut artifacts = Vec::new();
    for b in &built {
        task.set(&format!("verifying {}", b.name));
        artifacts.push(build::finish_artifact(target, b, &cfg.out_dir)?);
    }
    if cfg.smoke {
        for a in &artifacts {
            task.set(&format!("smoke-running {}", a.name));
            let line = build::smoke(a, &cfg.smoke_args)?;
            progress.say(&format!(
                "{:<14} {} ran: {line}",
                target.platform.to_string(),
                a.name
            ));
        }
    }
    task.finish("done");
    Ok(artifacts)
}

fn not_a_project(dir: &Path) -> UsageError {
    let has_go_files = std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "go"))
    });
    if has_go_files {
        return UsageError(format!(
            "{} has Go files but no go.mod, so it is not a Go module: run `go mod init NAME` there \
             (kiln builds modules only).",
            dir.display()
        ));
    }
    UsageError(format!(
        "{} is not a cargo project (no Cargo.toml), a Go module (no go.mod) or a C project (no \
         CMakeLists.txt, Makefile or [c] in kiln.toml). Run kiln in a project directory, pass its \
         path (`kiln build PATH`), or give --manifest-path.",
        dir.display()
    ))
}

fn validate_outputs(outputs: &[String]) -> anyhow::Result<()> {
    for o in outputs {
        if !o.starts_with("oci:") {
            return Err(
                UsageError(format!("unsupported --output `{o}`: use oci:DIR[:TAG]")).into(),
            );
        }
    }
    Ok(())
}

fn pack_images(
    _cfg: &BuildConfig,
    _artifacts: &[Artifact],
    _plan: &Plan,
    _progress: &Progress,
) -> anyhow::Result<String> {
    anyhow::bail!("image output is not wired in yet")
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The summary table, or JSON lines.
fn print_outcome(outcome: &BuildOutcome, cfg: &BuildConfig, ctx: &Ctx) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if ctx.json {
        for a in &outcome.artifacts {
            let mut v = serde_json::to_value(a)?;
            v["reason"] = json!("artifact");
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        }
        if let Some(d) = &outcome.index_digest {
            writeln!(
                out,
                "{}",
                json!({"reason": "index", "digest": d, "outputs": cfg.outputs})
            )?;
        }
        return Ok(());
    }
    let rows: Vec<[String; 5]> = outcome
        .artifacts
        .iter()
        .map(|a| {
            [
                a.platform.clone(),
                a.name.clone(),
                human_size(a.size),
                a.report.linkage.to_string(),
                a.sha256[..12].to_string(),
            ]
        })
        .collect();
    let header = ["PLATFORM", "BINARY", "SIZE", "LINKAGE", "SHA256"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    writeln!(out, "{}", line(header))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]))?;
    }
    writeln!(out, "binaries in {}", cfg.out_dir.display())?;
    if let Some(d) = &outcome.index_digest {
        writeln!(out, "index {d} -> {}", cfg.outputs.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
