//! `--debug-image`: next to each image, its debug twin (the same layers plus busybox, see
//! `oci::debug`), written to each output with `-debug` after the tag. The production image
//! is built exactly as without the flag.

use anyhow::Context;

use crate::config::BuildConfig;
use crate::error::UsageError;
use crate::oci::{
    self, BuildOptions, BuiltIndex, LayerEntry, OutputSpec, PlatformImage, Push, debug,
    distroless::DEFAULT_LOCK,
};
use crate::progress::Progress;

/// What the twins need, found before anything builds: busybox per Debian architecture and
/// the outputs.
pub struct Twin {
    busybox: std::collections::BTreeMap<String, Vec<LayerEntry>>,
    outputs: Vec<OutputSpec>,
}

/// The twin plan for `cfg`, when `--debug-image` asks for one: bad outputs and a busybox
/// that cannot be had fail here, before the build.
pub fn prepare(cfg: &BuildConfig, outputs: &[OutputSpec]) -> anyhow::Result<Option<Twin>> {
    if !cfg.debug_image {
        return Ok(None);
    }
    if outputs.is_empty() {
        return Err(UsageError(
            "--debug-image writes a twin of each image: give an image output (-o oci:DIR:TAG)"
                .into(),
        )
        .into());
    }
    let outputs = outputs
        .iter()
        .map(debug::twin_output)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let platforms: Vec<&crate::target::Platform> =
        cfg.targets.iter().map(|t| &t.platform).collect();
    let lock = cfg.project_dir.join(DEFAULT_LOCK);
    let busybox = debug::busybox_layers(&lock, &platforms)
        .with_context(|| format!("busybox for the debug image ({})", lock.display()))?;
    Ok(Some(Twin { busybox, outputs }))
}

/// The twins of `images`, in memory.
pub fn build(
    twin: &Twin,
    images: &[PlatformImage],
    opts: &BuildOptions,
) -> anyhow::Result<BuiltIndex> {
    let twins = debug::twins(images, &twin.busybox)?;
    oci::build_index(&twins, opts).context("building the debug image")
}

/// Write the twins' index to each output's `-debug` twin.
pub fn write(
    twin: &Twin,
    index: &BuiltIndex,
    push: &Push,
    progress: &Progress,
) -> anyhow::Result<()> {
    oci::write_outputs(&twin.outputs, index, push)?;
    for o in &twin.outputs {
        if !matches!(o, OutputSpec::Registry(_)) {
            progress.say(&format!("wrote {o}"));
        }
    }
    Ok(())
}
