//! Packing: one image per platform (the binaries, extra files, config), the index over
//! them, and every output written. `kiln build` packs what it built ([`pack_build`]);
//! `kiln image` packs prebuilt binaries ([`pack_prebuilt`]), gating them side by side.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::builders::{Artifact, Plan};
use crate::config::BuildConfig;
use crate::error::VerificationFailed;
use crate::oci::referrers::Referrer;
use crate::oci::registry::Pushed;
use crate::oci::{
    self, BuildOptions, BuiltIndex, EntrySource, LayerEntry, Metadata, OutputSpec, PlatformImage,
};
use crate::progress::Progress;
use crate::target::Target;

use super::gate;

/// The `[image] files` entries, checked to exist.
pub(super) fn extra_files(img: &crate::config::ImageConfig) -> anyhow::Result<Vec<LayerEntry>> {
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
    Ok(extra)
}

/// Where a build keeps its compressed layers for the next one: in its target dir when it
/// has one, else in kiln's cache; valid for this kiln executable only (another may
/// compress differently).
pub(super) fn layer_store(cfg: &BuildConfig) -> oci::reuse::LayerStore {
    let dir = match &cfg.target_dir {
        Some(d) => d.join("kiln").join("layers"),
        None => crate::fsutil::cache_dir().join("layers"),
    };
    oci::reuse::LayerStore::new(
        &dir,
        &crate::builders::fresh::Fingerprint::new("layer blobs").finish(),
    )
}

/// One image per platform (the binaries, extra files, config) and the index, in memory;
/// [`write_outputs`] writes them. With `twin`, also the debug twins' index. Also the
/// `[image] files` entries the images hold, for the image's SBOM.
pub fn pack_build(
    cfg: &BuildConfig,
    artifacts: &[Artifact],
    plan: &Plan,
    source_date_epoch: Option<u64>,
    progress: &Progress,
    twin: Option<&super::debug::Twin>,
    git: &super::git::GitProbe,
) -> anyhow::Result<(BuiltIndex, Option<BuiltIndex>, Vec<LayerEntry>)> {
    let img = &cfg.image;
    let extra = extra_files(img)?;
    let package = plan.package.as_ref();
    let settings = img.settings();
    let bins: Vec<&str> = plan.bins.iter().map(String::as_str).collect();
    let images: Vec<PlatformImage> = plan
        .stages
        .iter()
        .map(|stage| {
            let binaries: Vec<(&str, &Path)> = artifacts
                .iter()
                .filter(|a| a.target.name == stage.target.name)
                .map(|a| (a.name.as_str(), a.path.as_path()))
                .collect();
            settings.platform_image(
                &stage.target.platform,
                &binaries,
                &bins,
                package.map(|p| p.name.as_str()),
                &extra,
            )
        })
        .collect();
    let opts = BuildOptions {
        source_date_epoch,
        compression: img.compression,
        base: img.base.clone(),
        metadata: Metadata {
            title: img.name.clone().or_else(|| package.map(|p| p.name.clone())),
            version: package.map(|p| p.version.clone()).filter(|v| !v.is_empty()),
            revision: git.revision(),
            source: package.and_then(|p| p.repository.clone()),
            licenses: package.and_then(|p| p.license.clone()),
            description: package.and_then(|p| p.description.clone()),
        },
        reuse: Some(layer_store(cfg)),
    };
    let index = oci::build_index(&images, &opts)?;
    for w in &index.warnings {
        progress.say(&format!("warning: {w}"));
    }
    let debug = twin
        .map(|t| super::debug::build(t, &images, &opts))
        .transpose()?;
    Ok((index, debug, extra))
}

/// Write the index to every output (`docker://` ones pushed as `push` says), with
/// `referrers` attached where `--attestations` says: by default to registries and tagged
/// layouts and archives.
pub fn write_outputs(
    cfg: &BuildConfig,
    outputs: &[OutputSpec],
    index: &BuiltIndex,
    referrers: &[Referrer],
    progress: &Progress,
    push: &oci::Push,
) -> anyhow::Result<Option<Pushed>> {
    let attach = |o: &OutputSpec| {
        let named = match o {
            OutputSpec::OciDir { tag, .. } | OutputSpec::OciArchive { tag, .. } => tag.is_some(),
            OutputSpec::DockerArchive { .. } => false,
            OutputSpec::Registry(_) => true,
        };
        cfg.release.attach_to(named)
    };
    let pushed = oci::output::write_outputs_attached(outputs, index, push, referrers, &attach)?;
    for o in outputs {
        if !matches!(o, OutputSpec::Registry(_)) {
            progress.say(&format!("wrote {o}"));
        }
    }
    Ok(pushed)
}

/// A prebuilt binary `kiln image` packs: for which target, where it is, its name in the
/// image.
#[derive(Debug, Clone)]
pub struct Prebuilt {
    pub target: Target,
    pub path: PathBuf,
    pub name: String,
}

/// Build the index over `images` while gating `binaries` (every one static and for its
/// platform, or exit 3 with the reasons). Layer blobs go to the `opened` outputs as they
/// are made (they keep nothing when dropped unfinished), and stay in memory only when
/// another of `outputs` needs them; the gate's verdict comes first.
pub fn pack_prebuilt(
    binaries: &[Prebuilt],
    images: &[PlatformImage],
    opts: &BuildOptions,
    opened: &oci::output::Opened,
    outputs: &[OutputSpec],
) -> anyhow::Result<BuiltIndex> {
    let sinks = opened.sinks();
    let (gated, built) = std::thread::scope(|s| {
        let gated = s.spawn(|| gate_prebuilt(binaries));
        // Layouts only: the layers are written as they are made and not kept in memory.
        let built = if opened.takes_all(outputs) {
            oci::index::build_index_only_to(images, opts, &sinks)
        } else {
            oci::index::build_index_to(images, opts, &sinks)
        };
        (
            gated
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            built,
        )
    });
    gated?;
    built.context("building the image")
}

/// The ELF gate for prebuilt binaries, one after another on the gate's thread: the
/// verdict reads only headers and small sections (microseconds), while the compressors
/// have every core.
fn gate_prebuilt(binaries: &[Prebuilt]) -> anyhow::Result<()> {
    for b in binaries {
        if !b.path.is_file() {
            bail!("{}: no such file", b.path.display());
        }
    }
    let failures: Vec<String> = binaries.iter().filter_map(check_prebuilt).collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(VerificationFailed(failures.join("\n")).into())
    }
}

/// Why `b` cannot go into an image, if it cannot.
fn check_prebuilt(b: &Prebuilt) -> Option<String> {
    let label = format!("{} ({})", b.path.display(), b.target.platform);
    // The verdict only: the binary is compressed next, every byte of it.
    match crate::elf::verdict_path(&b.path) {
        Ok(report) => gate::problems(&label, &report, &b.target),
        Err(e) => Some(format!(
            "{label}: {e}; an image needs a static Linux executable built for {}",
            b.target.platform
        )),
    }
}
