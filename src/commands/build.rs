//! `kiln build`: plan → build (one stage per target, in parallel) → inspect gate → smoke →
//! images. Prints a summary table, or one JSON object per artifact / image / index.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use anyhow::Context;

use crate::build::{self, Artifact, Plan, Stage, c, go, rust};
use crate::cli::BuildArgs;
use crate::commands::Ctx;
use crate::config::{self, BuildConfig};
use crate::error::{TargetsFailed, UsageError};
use crate::exec::Cmd;
use crate::oci::{
    self, BuildOptions, BuiltIndex, EntrySource, ImageSpec, LayerEntry, Metadata, OutputSpec,
    PlatformImage,
};
use crate::progress::{Progress, human_size};

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub artifacts: Vec<Artifact>,
    /// The image index, when an image was written.
    pub index: Option<BuiltIndex>,
}

pub fn run(args: &BuildArgs, ctx: &Ctx) -> anyhow::Result<BuildOutcome> {
    let cfg = config::resolve_build(args)?;
    super::push::options(&args.registry);
    let progress = Progress::new(ctx.quiet || ctx.json);
    let outcome = build(&cfg, &progress)?;
    let (_, remote) = oci::registry::split_outputs(&cfg.outputs)?;
    let pushed = match &outcome.index {
        Some(index) => super::push::push_outputs(index, &remote, &args.registry, ctx)?,
        None => None,
    };
    print_outcome(&outcome, &cfg, ctx)?;
    if let Some(p) = &pushed {
        super::push::print_pushed(p, ctx, args.registry.push_by_digest)?;
    }
    Ok(outcome)
}

/// Build every target of `cfg`; the library entry point (no printing but progress).
pub fn build(cfg: &BuildConfig, progress: &Progress) -> anyhow::Result<BuildOutcome> {
    // Bad --output values fail before minutes of building. `docker://` outputs are pushed
    // by the caller once the index is built.
    let (local, remote) = oci::registry::split_outputs(&cfg.outputs)?;
    let outputs = oci::output::parse_outputs(&local, cfg.docker_platform.as_deref())?;
    let plan = prepare(cfg, progress)?;
    let stages = &plan.stages;

    let results: Mutex<Vec<(usize, anyhow::Result<Vec<Artifact>>)>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.min(stages.len()) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
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

    let index = if outputs.is_empty() && remote.is_empty() {
        None
    } else {
        Some(pack_images(cfg, &outputs, &artifacts, &plan, progress)?)
    };
    Ok(BuildOutcome { artifacts, index })
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
        for a in &mut artifacts {
            task.set(&format!("smoke-running {}", a.name));
            let line = build::smoke(a, &cfg.smoke_args)?;
            progress.say(&format!(
                "{:<14} {} ran: {line}",
                target.platform.to_string(),
                a.name
            ));
            // JSON mode shows no progress: the line goes into the artifact message.
            a.smoke = Some(line);
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

/// The commit the project is at, when it is a git checkout.
fn git_revision(dir: &Path) -> Option<String> {
    which::which("git").ok()?;
    Cmd::new("git", "read the git revision")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .read()
        .ok()
        .filter(|r| r.len() == 40)
}

/// The entrypoint when the config gives none: the only binary, else the one named like
/// the package, else the first.
fn default_entrypoint(bin_dir: &str, bins: &[String], package: Option<&str>) -> Vec<String> {
    let name = match bins {
        [one] => one.as_str(),
        _ => package
            .filter(|p| bins.iter().any(|b| b == p))
            .or(bins.first().map(String::as_str))
            .unwrap_or_default(),
    };
    if name.is_empty() {
        Vec::new()
    } else {
        vec![format!("{}/{name}", bin_dir.trim_end_matches('/'))]
    }
}

/// One image per platform (the binaries, extra files, config), the index, every output.
fn pack_images(
    cfg: &BuildConfig,
    outputs: &[OutputSpec],
    artifacts: &[Artifact],
    plan: &Plan,
    progress: &Progress,
) -> anyhow::Result<BuiltIndex> {
    let img = &cfg.image;
    let mut extra = Vec::new();
    for f in &img.files {
        let meta = fs_err::metadata(&f.src).with_context(|| {
            format!(
                "image file {} (from [image] files in the config)",
                f.src.display()
            )
        })?;
        extra.push(LayerEntry {
            path: f.dst.clone(),
            source: if meta.is_dir() {
                EntrySource::Dir
            } else {
                EntrySource::File(f.src.clone())
            },
            mode: f.mode.unwrap_or(if meta.is_dir() { 0o755 } else { 0o644 }),
            uid: 0,
            gid: 0,
        });
    }
    let package = plan.package.as_ref();
    let spec = ImageSpec {
        user: img.user.clone(),
        entrypoint: img.entrypoint.clone().unwrap_or_else(|| {
            default_entrypoint(&img.bin_dir, &plan.bins, package.map(|p| p.name.as_str()))
        }),
        cmd: img.cmd.clone(),
        env: img.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        workdir: img.workdir.clone(),
        labels: img.labels.clone(),
        exposed_ports: img.ports.clone(),
        stop_signal: img.stop_signal.clone(),
        annotations: Default::default(),
    };
    let images: Vec<PlatformImage> = plan
        .stages
        .iter()
        .map(|stage| {
            let mut entries: Vec<LayerEntry> = artifacts
                .iter()
                .filter(|a| a.target.name == stage.target.name)
                .map(|a| LayerEntry {
                    path: format!("{}/{}", img.bin_dir.trim_end_matches('/'), a.name),
                    source: EntrySource::File(a.path.clone()),
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                })
                .collect();
            entries.extend(extra.iter().cloned());
            PlatformImage {
                platform: stage.target.platform.clone(),
                entries,
                spec: spec.clone(),
            }
        })
        .collect();
    let opts = BuildOptions {
        source_date_epoch: cfg.source_date_epoch,
        compression: img.compression,
        base: img.base.clone(),
        metadata: Metadata {
            title: img.name.clone().or_else(|| package.map(|p| p.name.clone())),
            version: package.map(|p| p.version.clone()).filter(|v| !v.is_empty()),
            revision: git_revision(&cfg.project_dir),
            source: package.and_then(|p| p.repository.clone()),
            licenses: package.and_then(|p| p.license.clone()),
            description: package.and_then(|p| p.description.clone()),
        },
    };
    let index = oci::build_index(&images, &opts)?;
    for w in &index.warnings {
        progress.say(&format!("warning: {w}"));
    }
    for o in outputs {
        oci::write_output(o, &index).with_context(|| format!("writing {o}"))?;
        progress.say(&format!("wrote {o}"));
    }
    Ok(index)
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
        if let Some(index) = &outcome.index {
            for image in &index.images {
                writeln!(
                    out,
                    "{}",
                    json!({
                        "reason": "image",
                        "platform": image.platform.to_string(),
                        "manifest": image.manifest,
                        "config": image.config,
                        "layers": image.layers.iter().map(|l| &l.digest).collect::<Vec<_>>(),
                    })
                )?;
            }
            writeln!(
                out,
                "{}",
                json!({"reason": "index", "digest": index.digest, "outputs": cfg.outputs})
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
    if let Some(index) = &outcome.index {
        writeln!(out, "index {} -> {}", index.digest, cfg.outputs.join(", "))?;
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
