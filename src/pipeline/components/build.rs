//! Building checked components: plan every project, run the waves of stages, pack one image
//! per platform with a layer per component.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::builders::{Artifact, Plan};
use crate::config::{self, BuildConfig};
use crate::exec::Cmd;
use crate::oci::spec::ImageSettings;
use crate::oci::{
    self, BuildOptions, EntrySource, LayerEntry, Metadata, NamedLayer, PlatformImage,
};
use crate::progress::Progress;

use super::super::stages::{self, Job};
use super::super::{BuildOutcome, attest, pack};
use super::{Component, Kind, check_binary_destinations, err, resolve};

/// Build every component for every platform, gate and smoke-run the binaries, and write
/// one image per platform with a layer per component.
pub fn build(
    cfg: &BuildConfig,
    progress: &Progress,
    push: &oci::Push,
) -> anyhow::Result<BuildOutcome> {
    let outputs = oci::output::parse_outputs(&cfg.outputs, cfg.docker_platform.as_deref())?;
    oci::output::check_push(&outputs, push.by_digest)?;
    let twin = super::super::debug::prepare(cfg, &outputs)?;
    let source_date_epoch = BuildOptions::source_date_epoch_from_env()?;
    let root = std::path::absolute(&cfg.project_dir)?;
    let comps = resolve(&root, &cfg.components, &cfg.only_components)?;
    let settings = cfg.image.settings();

    let plans = plan_projects(cfg, &comps, progress)?;
    check_binary_destinations(&comps, &plans, |b| settings.bin_path(b))?;
    let bins: Vec<&str> = plans
        .iter()
        .flatten()
        .flat_map(|(_, p)| p.bins.iter().map(String::as_str))
        .collect();
    let image_wanted = !outputs.is_empty();
    if image_wanted {
        check_entrypoint(cfg, &settings, &bins)?;
    }
    let mut built = run_waves(cfg, &comps, &plans, progress)?;
    if cfg.release.strip {
        super::super::strip::split_debuginfo(&mut built.artifacts, progress)?;
    }

    let (index, debug_index) = if image_wanted {
        let images = platform_images(cfg, &comps, &built, &settings, &bins)?;
        let opts = BuildOptions {
            source_date_epoch,
            compression: cfg.image.compression,
            base: cfg.image.base.clone(),
            metadata: Metadata {
                title: cfg
                    .image
                    .name
                    .clone()
                    .or_else(|| root.file_name().map(|n| n.to_string_lossy().into_owned())),
                revision: pack::git_revision(&cfg.project_dir),
                ..Default::default()
            },
        };
        let index = oci::build_index(&images, &opts)?;
        for w in &index.warnings {
            progress.say(&format!("warning: {w}"));
        }
        let debug_index = twin
            .as_ref()
            .map(|t| super::super::debug::build(t, &images, &opts))
            .transpose()?;
        (Some(index), debug_index)
    } else {
        (None, None)
    };
    // SBOMs, provenance, archives and SHA256SUMS before the images are written: they are
    // attached to them.
    let owned: Vec<Vec<Artifact>> = (0..comps.len())
        .map(|i| {
            built
                .artifacts
                .iter()
                .filter(|a| built.owner_of.get(&a.name) == Some(&i))
                .cloned()
                .collect()
        })
        .collect();
    let parts = release_parts(&plans, &owned);
    let (release, referrers) = if attest::wanted(cfg) {
        attest::release(cfg, &parts, index.as_ref(), source_date_epoch, progress)?
    } else {
        Default::default()
    };
    // `--attestations buildkit`: the statements go inside the index instead.
    let index = attest::buildkit_index(cfg, &parts, index, &referrers)?;
    let pushed = match &index {
        Some(index) => pack::write_outputs(cfg, &outputs, index, &referrers, progress, push)?,
        None => None,
    };
    if let (Some(t), Some(d)) = (&twin, &debug_index) {
        super::super::debug::write(t, d, push, progress)?;
    }
    Ok(BuildOutcome {
        artifacts: built.artifacts,
        index,
        release,
        referrers,
        outputs,
        pushed,
        debug_index,
    })
}

/// What a polyglot release is made of, as for one project: each project component's
/// binaries (`owned`, by component) with its own config (features, `[c] components`), so
/// each platform's SBOM lists every component's packages and its archive every binary.
fn release_parts<'a>(
    plans: &'a [Option<(BuildConfig, Plan)>],
    owned: &'a [Vec<Artifact>],
) -> Vec<attest::Part<'a>> {
    plans
        .iter()
        .zip(owned)
        .filter_map(|(p, artifacts)| {
            p.as_ref().map(|(cfg, plan)| attest::Part {
                cfg,
                plan,
                artifacts,
            })
        })
        .collect()
}

/// Each project component's configuration and plan (cargo metadata, go list: nothing is
/// compiled yet); `None` for `build` components.
fn plan_projects(
    cfg: &BuildConfig,
    comps: &[Component],
    progress: &Progress,
) -> anyhow::Result<Vec<Option<(BuildConfig, Plan)>>> {
    let mut plans = Vec::new();
    for c in comps {
        plans.push(match &c.kind {
            Kind::Project { dir } => {
                let ccfg = config::component_config(cfg, dir, &c.table)?;
                let plan = stages::prepare(&ccfg, progress)
                    .with_context(|| format!("planning component `{}`", c.name))?;
                if plan.bins.is_empty() {
                    return Err(err(format!(
                        "component `{}` ({}) builds no binary: it has no output for the image",
                        c.name,
                        dir.display()
                    ))
                    .into());
                }
                Some((ccfg, plan))
            }
            Kind::Command { .. } => None,
        });
    }
    Ok(plans)
}

/// An image of several binaries needs `entrypoint` to say which one runs.
fn check_entrypoint(
    cfg: &BuildConfig,
    settings: &ImageSettings,
    bins: &[&str],
) -> anyhow::Result<()> {
    if bins.len() > 1 && cfg.image.entrypoint.is_none() {
        return Err(err(format!(
            "the image holds {} binaries ({}): say which one runs with `entrypoint` in [image] \
             of {}, e.g. entrypoint = [\"{}\"]",
            bins.len(),
            bins.join(", "),
            cfg.project_dir.join("kiln.toml").display(),
            settings.bin_path(bins[0])
        ))
        .into());
    }
    Ok(())
}

/// What the waves built: every binary, which component each belongs to, and the files of
/// each `build` component (by component index).
struct Built {
    artifacts: Vec<Artifact>,
    owner_of: BTreeMap<String, usize>,
    files: Vec<Vec<LayerEntry>>,
}

/// Wave by wave: the `build` commands of a wave one after another, then every stage of its
/// projects at once.
fn run_waves(
    cfg: &BuildConfig,
    comps: &[Component],
    plans: &[Option<(BuildConfig, Plan)>],
    progress: &Progress,
) -> anyhow::Result<Built> {
    let mut built = Built {
        artifacts: Vec::new(),
        owner_of: BTreeMap::new(),
        files: vec![Vec::new(); comps.len()],
    };
    let last = comps.iter().map(|c| c.wave).max().unwrap_or(0);
    for wave in 0..=last {
        for (i, c) in comps.iter().enumerate().filter(|(_, c)| c.wave == wave) {
            if let Kind::Command {
                build,
                dir,
                output,
                dst,
            } = &c.kind
            {
                built.files[i] = run_command(cfg, &c.name, build, dir, output, dst, progress)?;
            }
        }
        let mut jobs = Vec::new();
        for (i, (c, p)) in comps.iter().zip(plans).enumerate() {
            let Some((ccfg, plan)) = p.as_ref().filter(|_| c.wave == wave) else {
                continue;
            };
            for b in &plan.bins {
                built.owner_of.insert(b.clone(), i);
            }
            for stage in &plan.stages {
                jobs.push(Job {
                    label: format!("{} {}", c.name, stage.target.platform),
                    stage,
                    cfg: ccfg,
                });
            }
        }
        if !jobs.is_empty() {
            built
                .artifacts
                .extend(stages::run_jobs(&jobs, cfg.jobs, progress)?);
        }
    }
    Ok(built)
}

/// One image per platform: a layer per component (its binaries for that platform, or its
/// files), then `[image] files`.
fn platform_images(
    cfg: &BuildConfig,
    comps: &[Component],
    built: &Built,
    settings: &ImageSettings,
    bins: &[&str],
) -> anyhow::Result<Vec<PlatformImage>> {
    let extra = pack::extra_files(&cfg.image)?;
    Ok(cfg
        .targets
        .iter()
        .map(|t| {
            let mut layers: Vec<NamedLayer> = comps
                .iter()
                .enumerate()
                .map(|(i, c)| NamedLayer {
                    name: c.name.clone(),
                    entries: match c.kind {
                        Kind::Project { .. } => built
                            .artifacts
                            .iter()
                            .filter(|a| {
                                a.target.name == t.name && built.owner_of.get(&a.name) == Some(&i)
                            })
                            .map(|a| LayerEntry::file(settings.bin_path(&a.name), &a.path, 0o755))
                            .collect(),
                        Kind::Command { .. } => built.files[i].clone(),
                    },
                })
                .collect();
            if !extra.is_empty() {
                layers.push(NamedLayer {
                    name: "[image] files".into(),
                    entries: extra.clone(),
                });
            }
            PlatformImage {
                platform: t.platform.clone(),
                entries: Vec::new(),
                layers,
                spec: settings.spec(bins, None),
            }
        })
        .collect())
}

/// Run a `build` component's command once and list its output for the image.
fn run_command(
    cfg: &BuildConfig,
    name: &str,
    build: &str,
    dir: &Path,
    output: &Path,
    dst: &str,
    progress: &Progress,
) -> anyhow::Result<Vec<LayerEntry>> {
    let task = progress.task(name);
    task.set("building");
    Cmd::new("sh", format!("build component {name}"))
        .arg("-c")
        .arg(build)
        .dir(dir)
        .jobserver()
        .run()
        .with_context(|| format!("component `{name}`"))?;
    let out = dir.join(output);
    if !out.exists() {
        anyhow::bail!(
            "component `{name}`: its build command `{build}` succeeded but wrote no {}: set \
             `output` to what it produces",
            out.display()
        );
    }
    let what = format!(
        "[[component]] `{name}` output `{}` -> `{dst}`",
        output.display()
    );
    let sources = oci::sources::resolve_as(&what, &cfg.project_dir, &out, dst, None, false)?;
    task.finish("done");
    Ok(sources
        .into_iter()
        .map(|s| {
            let dir = s.src.is_dir();
            LayerEntry {
                path: s.dst,
                source: if dir {
                    EntrySource::Dir
                } else {
                    EntrySource::File(s.src)
                },
                mode: s.mode.unwrap_or(if dir { 0o755 } else { 0o644 }),
                uid: 0,
                gid: 0,
            }
        })
        .collect())
}
