//! Bases an image is built on: what layers and config come before kiln's own layer.
//! [`BaseImage`] is what every kind of base resolves to; `from_image` makes one from an
//! existing image (distroless makes its own in `distroless.rs`; the choice between them is
//! made where the index is assembled, `index.rs`).

use std::collections::BTreeMap;

use anyhow::Context;
use oci_spec::image::ImageConfiguration;

use super::layer::Layer;
use super::read::ReadImage;
use crate::target::Platform;

/// One platform's base, resolved.
#[derive(Debug, Clone, Default)]
pub struct BaseImage {
    /// Layers below kiln's, bottom first.
    pub layers: Vec<Layer>,
    /// The base image's config (its env, workdir, history ... are inherited).
    pub config: Option<ImageConfiguration>,
    /// Environment the base kind sets (`SSL_CERT_FILE` for distroless).
    pub env: Vec<String>,
    /// `created_by` for each of `layers` when there is no base config carrying history.
    pub history: Vec<String>,
    /// `org.opencontainers.image.base.*` annotations.
    pub annotations: BTreeMap<String, String>,
    /// What the user should know about this base.
    pub warnings: Vec<super::Warning>,
}

/// One platform of a base image: its layers as they are, its config to inherit from.
pub fn from_image(image: &ReadImage, p: &Platform) -> anyhow::Result<BaseImage> {
    let m = image.for_platform(p)?;
    let layers = m
        .layers
        .iter()
        .map(|l| l.load())
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| format!("reading the {p} layers of {}", image.reference))?;
    // base.name would be a path on this machine: only the digest is recorded, so the image
    // does not depend on where the base was.
    let mut annotations = BTreeMap::new();
    if image.digest.is_some() {
        annotations.insert(
            oci_spec::image::ANNOTATION_BASE_IMAGE_DIGEST.to_string(),
            m.manifest_digest.clone(),
        );
    }
    // Every layer needs a history entry; a base whose config has none gets one per layer.
    let history = if m.config.history().as_ref().is_none_or(|h| h.is_empty()) {
        layers
            .iter()
            .map(|l| format!("kiln: layer {} of the base image", l.digest))
            .collect()
    } else {
        Vec::new()
    };
    Ok(BaseImage {
        layers,
        config: Some(m.config.clone()),
        env: Vec::new(),
        history,
        annotations,
        warnings: Vec::new(),
    })
}
