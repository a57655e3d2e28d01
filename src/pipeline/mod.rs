//! The pipeline `kiln build` and `kiln image` share: plan → stages (one per target, in
//! parallel) → gate → smoke → pack (one image per platform, the index) → outputs. Each
//! step is a function from plain data to plain data; commands parse arguments, call in
//! here and print.
//!
//! Modules: `stages` (planning and running the builders), `gate` (the inspector verdict on
//! every binary, the smoke run), `pack` (images, index, outputs), `components` (polyglot
//! builds from `[[component]]` tables), `debug` (`--debug-image` twins).

pub mod attest;
pub mod components;
pub mod debug;
pub mod gate;
pub mod pack;
pub mod stages;
pub mod strip;

use crate::builders::Artifact;
use crate::config::BuildConfig;
use crate::oci::registry::Pushed;
use crate::oci::{self, BuildOptions, BuiltIndex, OutputSpec, Push};
use crate::progress::Progress;

pub use pack::{Prebuilt, pack_prebuilt};

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub artifacts: Vec<Artifact>,
    /// The image index, when an image was written.
    pub index: Option<BuiltIndex>,
    /// SBOMs, provenance, archives and SHA256SUMS written to the output directory.
    pub release: Vec<attest::Written>,
    /// SBOMs and provenance as OCI 1.1 artifacts, attached to the image in the outputs
    /// that take them (`--attestations`).
    pub referrers: Vec<oci::referrers::Referrer>,
    /// Where it was written.
    pub outputs: Vec<OutputSpec>,
    /// What the push to `docker://` outputs did, if there were some.
    pub pushed: Option<Pushed>,
    /// The debug twins' index (`--debug-image`).
    pub debug_index: Option<BuiltIndex>,
}

/// Build every target of `cfg`, gate and copy the binaries, and write the image outputs
/// (`docker://` ones pushed as `push` says); the library entry point of `kiln build` (no
/// printing but progress and push events).
pub fn build(cfg: &BuildConfig, progress: &Progress, push: &Push) -> anyhow::Result<BuildOutcome> {
    if !cfg.components.is_empty() {
        return components::build(cfg, progress, push);
    }
    // Bad --output values and a bad SOURCE_DATE_EPOCH fail before minutes of building.
    let outputs = oci::output::parse_outputs(&cfg.outputs, cfg.docker_platform.as_deref())?;
    oci::output::check_push(&outputs, push.by_digest)?;
    let source_date_epoch = BuildOptions::source_date_epoch_from_env()?;
    let twin = debug::prepare(cfg, &outputs)?;
    let plan = stages::prepare(cfg, progress)?;
    let mut artifacts = stages::run(&plan, cfg, progress)?;
    if cfg.release.strip {
        strip::split_debuginfo(&mut artifacts, progress)?;
    }
    let (index, debug_index) = if outputs.is_empty() {
        (None, None)
    } else {
        let (index, debug_index) = pack::pack_build(
            cfg,
            &artifacts,
            &plan,
            source_date_epoch,
            progress,
            twin.as_ref(),
        )?;
        (Some(index), debug_index)
    };
    // SBOMs and provenance before the images are written: they are attached to them.
    let parts = [attest::Part {
        cfg,
        plan: &plan,
        artifacts: &artifacts,
    }];
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
        debug::write(t, d, push, progress)?;
    }
    Ok(BuildOutcome {
        artifacts,
        index,
        release,
        referrers,
        outputs,
        pushed,
        debug_index,
    })
}
