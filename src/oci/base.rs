//! Bases an image is built on: what layers and config come before kiln's own layer.

use oci_spec::image::ImageConfiguration;

use super::layer::Layer;
use super::{Base, BuildOptions};
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
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Resolve `opts.base` for one platform.
pub fn resolve(
    base: &Base,
    _platform: &Platform,
    _opts: &BuildOptions,
) -> anyhow::Result<BaseImage> {
    match base {
        Base::Scratch => Ok(BaseImage::default()),
    }
}
