//! Building checked components: plan every project, run every stage as soon as what its
//! component needs is built, pack one image per platform with a layer per component.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Condvar, Mutex};

use anyhow::Context;

use crate::builders::{Artifact, Plan};
use crate::config::{self, BuildConfig};
use crate::error::TargetsFailed;
use crate::exec::Cmd;
use crate::oci::spec::ImageSettings;
use crate::oci::{
    self, BuildOptions, EntrySource, LayerEntry, Metadata, NamedLayer, PlatformImage,
};
use crate::par::par_map;
use crate::progress::Progress;

use super::super::stages::{self, Job};
use super::super::{BuildOutcome, Made, attest, pack};
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
    let git = super::super::git::GitProbe::start(
        &cfg.project_dir,
        super::super::git::wanted(cfg, &outputs),
    );

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
    let mut built = run_graph(cfg, &comps, &plans, progress)?;
    if cfg.release.strip {
        super::super::strip::split_debuginfo(cfg, &mut built.artifacts, progress)?;
    }
    // Nothing before the release files writes into the tree from here on.
    git.start_status();

    // `[image] files` (checked to exist only now: a build step may make them).
    let extra = if image_wanted {
        pack::extra_files(&cfg.image)?
    } else {
        Vec::new()
    };
    let (index, debug_index) = if image_wanted {
        let images = platform_images(cfg, &comps, &built, &settings, &bins, &extra);
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
                revision: git.revision(),
                ..Default::default()
            },
            reuse: Some(pack::layer_store(cfg)),
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
    // Each project component's binaries: its part of the release files.
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
    // The image's other files, for its SBOM: the build steps' outputs, then `[image] files`.
    let files: Vec<LayerEntry> = if image_wanted {
        let mut files: Vec<LayerEntry> = built.files.concat();
        files.extend(extra);
        files
    } else {
        Vec::new()
    };
    let written = super::super::finish(
        Made {
            cfg,
            parts: &parts,
            index,
            outputs: &outputs,
            twin: twin.as_ref(),
            debug_index: debug_index.as_ref(),
            files: &files,
            source_date_epoch,
            git: &git,
        },
        progress,
        push,
    )?;
    Ok(written.outcome(built.artifacts, outputs, debug_index))
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
/// compiled yet); `None` for `build` components. The components plan side by side (`go
/// list` and `cargo metadata` are a second or two of one CPU each); the first error in
/// component order is the one reported.
fn plan_projects(
    cfg: &BuildConfig,
    comps: &[Component],
    progress: &Progress,
) -> anyhow::Result<Vec<Option<(BuildConfig, Plan)>>> {
    par_map(comps, comps.len(), |c| plan_project(cfg, c, progress))
        .into_iter()
        .collect()
}

fn plan_project(
    cfg: &BuildConfig,
    c: &Component,
    progress: &Progress,
) -> anyhow::Result<Option<(BuildConfig, Plan)>> {
    let Kind::Project { dir } = &c.kind else {
        return Ok(None);
    };
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
    Ok(Some((ccfg, plan)))
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

/// What the units built: every binary, which component each belongs to, and the files of
/// each `build` component (by component index).
struct Built {
    artifacts: Vec<Artifact>,
    owner_of: BTreeMap<String, usize>,
    files: Vec<Vec<LayerEntry>>,
}

/// One piece of a polyglot build: a `build` component's command, or one stage (one
/// platform) of a project component.
enum Unit<'a> {
    Command(usize),
    Stage(usize, Job<'a>),
}

impl Unit<'_> {
    fn component(&self) -> usize {
        match self {
            Unit::Command(i) | Unit::Stage(i, _) => *i,
        }
    }
}

/// What a unit gave.
enum Done {
    Files(Vec<LayerEntry>),
    Artifacts(Vec<Artifact>),
    /// Not started: a component it needs failed (that failure is reported).
    Skipped,
}

/// How far each component is, so a unit starts as soon as what its component needs is
/// built (not when the whole previous wave is).
struct Ledger {
    state: Mutex<Vec<State>>,
    changed: Condvar,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Units still building.
    Building(usize),
    Built,
    Failed,
}

impl Ledger {
    /// Wait until every component in `needs` is built; false when one failed.
    fn wait_for(&self, needs: &[usize]) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if needs.iter().any(|&n| state[n] == State::Failed) {
                return false;
            }
            if needs.iter().all(|&n| state[n] == State::Built) {
                return true;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// One unit of component `i` ended.
    fn ended(&self, i: usize, ok: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state[i] = match (state[i], ok) {
            (State::Building(1), true) => State::Built,
            (State::Building(n), true) => State::Building(n - 1),
            _ => State::Failed,
        };
        self.changed.notify_all();
    }
}

/// Every `build` command and every stage of every project component at once, each
/// starting when the components it `needs` are built; the jobserver, not the number of
/// units, bounds the compilers running. Results in wave order, as `needs` orders them.
fn run_graph(
    cfg: &BuildConfig,
    comps: &[Component],
    plans: &[Option<(BuildConfig, Plan)>],
    progress: &Progress,
) -> anyhow::Result<Built> {
    crate::jobs::init(cfg.jobs);
    let index: BTreeMap<&str, usize> = comps
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = comps
        .iter()
        .map(|c| {
            c.needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    let mut built = Built {
        artifacts: Vec::new(),
        owner_of: BTreeMap::new(),
        files: vec![Vec::new(); comps.len()],
    };
    let mut order: Vec<usize> = (0..comps.len()).collect();
    order.sort_by_key(|&i| comps[i].wave);
    let mut units = Vec::new();
    for i in order {
        match (&comps[i].kind, &plans[i]) {
            (Kind::Command { .. }, _) => units.push(Unit::Command(i)),
            (Kind::Project { .. }, Some((ccfg, plan))) => {
                for b in &plan.bins {
                    built.owner_of.insert(b.clone(), i);
                }
                units.extend(plan.stages.iter().map(|stage| {
                    Unit::Stage(
                        i,
                        Job {
                            label: format!("{} {}", comps[i].name, stage.target.platform),
                            stage,
                            cfg: ccfg,
                        },
                    )
                }));
            }
            (Kind::Project { .. }, None) => {}
        }
    }
    let mut left = vec![0; comps.len()];
    for u in &units {
        left[u.component()] += 1;
    }
    let ledger = Ledger {
        state: Mutex::new(
            left.iter()
                .map(|&n| {
                    if n == 0 {
                        State::Built
                    } else {
                        State::Building(n)
                    }
                })
                .collect(),
        ),
        changed: Condvar::new(),
    };
    let results = par_map(&units, units.len(), |u| {
        let i = u.component();
        if !ledger.wait_for(&needs[i]) {
            ledger.ended(i, false);
            return Ok(Done::Skipped);
        }
        let done = match u {
            Unit::Command(i) => {
                let Kind::Command {
                    build,
                    dir,
                    output,
                    dst,
                } = &comps[*i].kind
                else {
                    unreachable!("a command unit is made for a command component only")
                };
                let start = std::time::SystemTime::now();
                let files = run_command(cfg, &comps[*i].name, build, dir, output, dst, progress);
                let name = format!("stage {}", comps[*i].name);
                crate::exec::trace(&name, start, std::time::SystemTime::now(), 0);
                files.map(Done::Files)
            }
            Unit::Stage(_, job) => {
                stages::run_stage(job.stage, job.cfg, &job.label, progress).map(Done::Artifacts)
            }
        };
        ledger.ended(i, done.is_ok());
        done
    });
    // (label, error, whether a stage: a stage's error is told with its label)
    let mut failures = Vec::new();
    for (u, r) in units.iter().zip(results) {
        match (u, r) {
            (_, Ok(Done::Files(files))) => built.files[u.component()] = files,
            (_, Ok(Done::Artifacts(a))) => built.artifacts.extend(a),
            (_, Ok(Done::Skipped)) => {}
            (Unit::Command(i), Err(e)) => failures.push((comps[*i].name.clone(), e, false)),
            (Unit::Stage(_, job), Err(e)) => failures.push((job.label.clone(), e, true)),
        }
    }
    match failures.len() {
        0 => Ok(built),
        1 => Err(match failures.remove(0) {
            (_, e, false) => e,
            (label, e, true) => e.context(format!("{label} failed")),
        }),
        _ => Err(TargetsFailed {
            failures: failures.into_iter().map(|(l, e, _)| (l, e)).collect(),
            total: units.len(),
        }
        .into()),
    }
}

/// One image per platform: a layer per component (its binaries for that platform, or its
/// files), then `[image] files`.
fn platform_images(
    cfg: &BuildConfig,
    comps: &[Component],
    built: &Built,
    settings: &ImageSettings,
    bins: &[&str],
    extra: &[LayerEntry],
) -> Vec<PlatformImage> {
    cfg.targets
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
                    entries: extra.to_vec(),
                });
            }
            PlatformImage {
                platform: t.platform.clone(),
                entries: Vec::new(),
                layers,
                spec: settings.spec(bins, None),
            }
        })
        .collect()
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
