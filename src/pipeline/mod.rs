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
pub mod git;
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
    // Before anything takes a token: the first use fixes the limit (`-j`).
    crate::jobs::init(cfg.jobs);
    if !cfg.components.is_empty() {
        return components::build(cfg, progress, push);
    }
    // Bad --output values and a bad SOURCE_DATE_EPOCH fail before minutes of building.
    let outputs = oci::output::parse_outputs(&cfg.outputs, cfg.docker_platform.as_deref())?;
    oci::output::check_push(&outputs, push.by_digest)?;
    let source_date_epoch = BuildOptions::source_date_epoch_from_env()?;
    let twin = debug::prepare(cfg, &outputs)?;
    let git = git::GitProbe::start(&cfg.project_dir, git::wanted(cfg, &outputs));
    let plan = stages::prepare(cfg, progress)?;
    let mut artifacts = stages::run(&plan, cfg, progress)?;
    if cfg.release.strip {
        strip::split_debuginfo(cfg, &mut artifacts, progress)?;
    }
    // Nothing before the release files writes into the tree from here on.
    git.start_status();
    let packing = std::time::SystemTime::now();
    // `files`: the `[image] files` the image holds, for its SBOM.
    let (index, debug_index, files) = if outputs.is_empty() {
        (None, None, Vec::new())
    } else {
        let (index, debug_index, files) = pack::pack_build(
            cfg,
            &artifacts,
            &plan,
            source_date_epoch,
            progress,
            twin.as_ref(),
            &git,
        )?;
        (Some(index), debug_index, files)
    };
    crate::exec::trace("pack the images", packing, packing, 0);
    let parts = [attest::Part {
        cfg,
        plan: &plan,
        artifacts: &artifacts,
    }];
    let written = finish(
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
    Ok(written.outcome(artifacts, outputs, debug_index))
}

/// What a build made, for [`finish`]: both build paths (one project, or
/// `[[component]]`s) end the same way and differ only in how `parts` are made.
pub(crate) struct Made<'a> {
    pub cfg: &'a BuildConfig,
    /// Each project's config, plan and binaries (one, or one per project component).
    pub parts: &'a [attest::Part<'a>],
    /// The image index, when an image is wanted.
    pub index: Option<BuiltIndex>,
    pub outputs: &'a [OutputSpec],
    pub twin: Option<&'a debug::Twin>,
    pub debug_index: Option<&'a BuiltIndex>,
    /// The files the image holds besides binaries and base (`[image] files`, build steps'
    /// outputs), for its SBOM; empty without an image.
    pub files: &'a [oci::LayerEntry],
    pub source_date_epoch: Option<u64>,
    /// The source's git state, asked in the background.
    pub git: &'a git::GitProbe,
}

/// What [`finish`] wrote.
pub(crate) struct Finished {
    /// The index as written (with the buildkit attestation manifests when asked for).
    pub index: Option<BuiltIndex>,
    pub release: Vec<attest::Written>,
    pub referrers: Vec<oci::referrers::Referrer>,
    pub pushed: Option<Pushed>,
}

impl Finished {
    /// The build's outcome: what was written, with the binaries, outputs and debug twins'
    /// index the caller kept.
    pub(crate) fn outcome(
        self,
        artifacts: Vec<Artifact>,
        outputs: Vec<OutputSpec>,
        debug_index: Option<BuiltIndex>,
    ) -> BuildOutcome {
        BuildOutcome {
            artifacts,
            index: self.index,
            release: self.release,
            referrers: self.referrers,
            outputs,
            pushed: self.pushed,
            debug_index,
        }
    }
}

/// The tail of every build: SBOMs, provenance, archives and SHA256SUMS (before the images,
/// which they are attached to), the buildkit attestations inside the index when asked for,
/// the image outputs, then the debug twins.
pub(crate) fn finish(w: Made<'_>, progress: &Progress, push: &Push) -> anyhow::Result<Finished> {
    let releasing = std::time::SystemTime::now();
    let (release, referrers) = if attest::wanted(w.cfg) {
        attest::release(
            w.cfg,
            w.parts,
            w.index.as_ref(),
            w.files,
            w.source_date_epoch,
            w.git,
            progress,
        )?
    } else {
        Default::default()
    };
    // `--attestations buildkit`: the statements go inside the index instead.
    crate::exec::trace("write the release files", releasing, releasing, 0);
    let index = attest::buildkit_index(w.cfg, w.parts, w.index, &referrers)?;
    let writing = std::time::SystemTime::now();
    let pushed = match &index {
        Some(index) => pack::write_outputs(w.cfg, w.outputs, index, &referrers, progress, push)?,
        None => None,
    };
    crate::exec::trace("write the image outputs", writing, writing, 0);
    if let (Some(t), Some(d)) = (w.twin, w.debug_index) {
        debug::write(t, d, push, progress)?;
    }
    Ok(Finished {
        index,
        release,
        referrers,
        pushed,
    })
}
