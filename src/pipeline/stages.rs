//! Planning (which builder, which targets) and running the stages: one per target, all at
//! once within the jobserver's limit, each building, gating and (with `--smoke`) running
//! its binaries.

use std::path::Path;

use crate::builders::{Artifact, Plan, Stage, c, go, rust, rust_group};
use crate::config::BuildConfig;
use crate::error::{TargetsFailed, UsageError};
use crate::par::par_map;
use crate::progress::Progress;

use super::gate;

/// Detect the project's language and plan its build.
pub fn prepare(cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<Plan> {
    if rust::detect(&cfg.project_dir, &cfg.cargo) {
        return rust_group::prepare(cfg, progress);
    }
    if go::detect(&cfg.project_dir) {
        return go::prepare(cfg, progress);
    }
    if c::detect(&cfg.project_dir) {
        return c::prepare(cfg, progress);
    }
    Err(not_a_project(&cfg.project_dir).into())
}

/// Run every stage of `plan` at once (the jobserver, not the number of stages, bounds the
/// compilers running: `cfg.jobs`); the artifacts in target order, or every target that
/// failed.
pub fn run(plan: &Plan, cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<Vec<Artifact>> {
    let jobs: Vec<Job> = plan
        .stages
        .iter()
        .map(|stage| Job {
            label: stage.target.platform.to_string(),
            stage,
            cfg,
        })
        .collect();
    run_jobs(&jobs, cfg.jobs, progress)
}

/// One stage and the config it is built with, labelled for progress and errors (the
/// platform; `component platform` in a polyglot build).
pub struct Job<'a> {
    pub label: String,
    pub stage: &'a Stage,
    pub cfg: &'a BuildConfig,
}

/// Run `jobs` at once within the jobserver's limit (`limit`, else one per CPU); the
/// artifacts in job order, or every job that failed.
pub fn run_jobs(
    jobs: &[Job],
    limit: Option<usize>,
    progress: &Progress,
) -> anyhow::Result<Vec<Artifact>> {
    crate::jobs::init(limit);
    let results = par_map(jobs, jobs.len(), |job| {
        run_stage(job.stage, job.cfg, &job.label, progress)
    });
    let mut artifacts = Vec::new();
    let mut failures = Vec::new();
    for (job, r) in jobs.iter().zip(results) {
        match r {
            Ok(a) => artifacts.extend(a),
            Err(e) => failures.push((job.label.clone(), e)),
        }
    }
    if failures.len() == 1 {
        let (label, e) = failures.remove(0);
        return Err(e.context(format!("{label} failed")));
    }
    if !failures.is_empty() {
        return Err(TargetsFailed {
            failures,
            total: jobs.len(),
        }
        .into());
    }
    Ok(artifacts)
}

/// One target: build, gate, copy to dist, smoke.
pub(crate) fn run_stage(
    stage: &Stage,
    cfg: &BuildConfig,
    label: &str,
    progress: &Progress,
) -> anyhow::Result<Vec<Artifact>> {
    let target = &stage.target;
    let task = progress.task(label);
    task.set("building");
    let start = std::time::SystemTime::now();
    let built = (stage.run)()?;
    let built_at = std::time::SystemTime::now();
    hold_for_test();
    let mut artifacts = Vec::new();
    for b in &built {
        task.set(&format!("verifying {}", b.name));
        artifacts.push(gate::finish_artifact(target, b, &cfg.out_dir)?);
    }
    if cfg.smoke {
        for a in &mut artifacts {
            task.set(&format!("smoke-running {}", a.name));
            let line = gate::smoke(a, &cfg.smoke_args)?;
            progress.say(&format!("{label:<14} {} ran: {line}", a.name));
            // JSON mode shows no progress: the line goes into the artifact message.
            a.smoke = Some(line);
        }
    }
    task.finish("done");
    // READY is when the build ended: END - READY is the gate and smoke run.
    crate::exec::trace(&format!("stage {label}"), start, built_at, 0);
    Ok(artifacts)
}

/// For tests, in debug builds only: with `KILN_TEST_HOLD_AFTER_BUILD=FILE` a stage creates
/// FILE when its build has ended and waits (at most two minutes) until FILE is gone before
/// it copies the binaries out, so that a test can run another build in between.
fn hold_for_test() {
    if !cfg!(debug_assertions) {
        return;
    }
    let Some(file) = std::env::var_os("KILN_TEST_HOLD_AFTER_BUILD") else {
        return;
    };
    let file = Path::new(&file);
    if std::fs::write(file, b"").is_err() {
        return;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while file.exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
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
