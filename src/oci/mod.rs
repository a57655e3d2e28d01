//! OCI image writing: deterministic layers, per-platform images, the multi-platform index,
//! and the sinks that write them (OCI layout, archives).
//!
//! Everything is built in memory as plain data (`BuiltIndex`), then written by a sink.
//!
//! ```no_run
//! use kiln::oci::{BuildOptions, ImageSpec, LayerEntry, PlatformImage};
//! # fn main() -> anyhow::Result<()> {
//! let images: Vec<PlatformImage> = [("linux/amd64", "dist/linux-amd64/hello"), ("linux/arm64", "dist/linux-arm64/hello")]
//!     .into_iter()
//!     .map(|(platform, path)| PlatformImage {
//!         platform: platform.parse().unwrap(),
//!         entries: vec![LayerEntry::file("/usr/local/bin/hello", path, 0o755)],
//!         spec: ImageSpec {
//!             entrypoint: vec!["/usr/local/bin/hello".into()],
//!             ..Default::default() // user "" means 65532:65532
//!         },
//!         layers: Vec::new(), // further prebuilt layers (one per polyglot component)
//!     })
//!     .collect();
//! let opts = BuildOptions {
//!     source_date_epoch: BuildOptions::source_date_epoch_from_env()?,
//!     ..Default::default() // gzip, scratch base, no metadata
//! };
//! let built = kiln::oci::build_index(&images, &opts)?;
//! for w in &built.warnings {
//!     eprintln!("warning: {w}");
//! }
//! kiln::oci::write_output(&kiln::oci::parse_output("oci:dist/image:1.0")?, &built)?;
//! # Ok(()) }
//! ```
//!
//! Modules: `layer` (tar, compression, digests), `image` (config, manifest, index
//! documents), `index` (`build_index`: assembling the multi-platform index), `base` and `distroless` (what comes below kiln's
//! layer), `layout` and `archive` (the sinks), `transport` (the one grammar for image names),
//! `output` (`--output` → sink), `read` (reading
//! images back), `json` (canonical JSON).

pub mod archive;
pub mod base;
pub mod buildkit;
mod compress;
mod deb;
pub mod debug;
pub mod decode;
pub mod distroless;
pub mod image;
pub mod index;
pub mod json;
pub mod layer;
pub mod layout;
pub mod merge;
pub mod output;
pub mod read;
pub mod referrers;
pub mod registry;
pub mod reuse;
pub mod rootfs;
pub mod sources;
pub mod spec;
mod tarstream;
pub mod transport;
pub mod validate;
pub mod whiteout;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::target::Platform;

pub use index::build_index;
pub use output::{OutputSpec, Push, parse_output, write_output, write_outputs};
pub use read::{LayerRef, PlatformManifest, ReadImage};

/// Read an image: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, or a
/// registry's `[docker://]HOST/REPO[:TAG|@sha256:…]` (through kiln's blob cache, with the
/// command line's registry options).
pub fn read_image(reference: &str) -> anyhow::Result<ReadImage> {
    match ImageRef::parse(reference, "image")? {
        ImageRef::Registry(r) => {
            registry::read_image(reference, &r, &registry::RegistryOptions::current())
                .with_context(|| format!("reading image {reference}"))
                .and_then(read::runnable)
        }
        _ => read::read_image(reference),
    }
}
pub use transport::ImageRef;

/// The OCI 1.1 artifacts (SBOMs, provenance) attached to `image` (read from `reference`)
/// or to one of its platform manifests: listed in a layout's `index.json`, or found in a
/// registry through the referrers API or its `sha256-<hex>` fallback tag.
pub fn read_attachments(
    reference: &str,
    image: &ReadImage,
) -> anyhow::Result<Vec<referrers::Attachment>> {
    let mut subjects: Vec<String> = image.digest.iter().cloned().collect();
    subjects.extend(image.platforms.iter().map(|p| p.manifest_digest.clone()));
    if registry::is_registry_ref(reference) {
        let r = registry::parse(reference)?;
        registry::referrers::attachments(&r, &subjects, &registry::RegistryOptions::current())
    } else {
        read::layout_attachments(reference, &subjects)
    }
    .with_context(|| format!("reading what is attached to {reference}"))
}

/// The document an attachment carries (its first layer: an SBOM, a statement), read
/// from the image `reference` it was found in.
pub fn read_attached_document(
    reference: &str,
    attachment: &referrers::Attachment,
) -> anyhow::Result<Vec<u8>> {
    let digest = attachment
        .document
        .as_deref()
        .with_context(|| format!("attachment {} has no layer", attachment.digest))?;
    let bytes = if registry::is_registry_ref(reference) {
        let r = registry::parse(reference)?;
        registry::referrers::document(&r, digest, &registry::RegistryOptions::current())
    } else {
        read::layout_blob(reference, digest)
    }
    .with_context(|| format!("reading {digest} attached to {reference}"))?;
    if crate::digest::sha256_digest(&bytes) != digest {
        anyhow::bail!("{digest} attached to {reference} does not match its digest");
    }
    Ok(bytes)
}

/// The image configuration a user controls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// `uid[:gid]` or a name; default `65532:65532`.
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `8080/tcp`.
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
    /// Annotations on the manifests and the index.
    pub annotations: BTreeMap<String, String>,
}

/// Where a file in a layer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    File(PathBuf),
    Bytes(Vec<u8>),
    Dir,
    Symlink(String),
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Absolute path inside the image: `/usr/local/bin/hello`.
    pub path: String,
    pub source: EntrySource,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl LayerEntry {
    /// A file copied from the build machine, owned by 0:0.
    pub fn file(path: impl Into<String>, src: impl Into<PathBuf>, mode: u32) -> Self {
        LayerEntry {
            path: path.into(),
            source: EntrySource::File(src.into()),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A file with the given content, owned by 0:0.
    pub fn bytes(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        LayerEntry {
            path: path.into(),
            source: EntrySource::Bytes(data.into()),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    /// A directory owned by `id:id`.
    pub fn dir(path: impl Into<String>, mode: u32, id: u64) -> Self {
        LayerEntry {
            path: path.into(),
            source: EntrySource::Dir,
            mode,
            uid: id,
            gid: id,
        }
    }
}

/// One platform's image, before it is built.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    pub platform: Platform,
    /// kiln's layer (none when empty).
    pub entries: Vec<LayerEntry>,
    /// Further layers after it, in order: one per component of a polyglot build, so that a
    /// change to one component changes one layer.
    pub layers: Vec<NamedLayer>,
    pub spec: ImageSpec,
}

/// A layer of a [`PlatformImage`] beyond its first, named in the image history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedLayer {
    /// What the layer holds (a component's name).
    pub name: String,
    pub entries: Vec<LayerEntry>,
}

/// How layers are compressed (`--compression`, `[image] compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

/// What the image is built on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Base {
    /// Nothing: only kiln's layer.
    #[default]
    Scratch,
    /// An existing image: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`
    /// or a registry's `[docker://]HOST/REPO[:TAG|@sha256:…]`.
    /// Each platform takes the matching image of the base's index.
    Image(String),
    /// kiln's distroless-like base (see `distroless`).
    Distroless(distroless::DistrolessSource),
}

impl std::str::FromStr for Base {
    type Err = crate::error::UsageError;
    /// `scratch`, `distroless` (pinned packages from `kiln-base.lock`), `distroless-host`,
    /// or an image reference `read_image` accepts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scratch" => Ok(Base::Scratch),
            "distroless" => Ok(Base::Distroless(distroless::DistrolessSource::Debs {
                lock: distroless::DEFAULT_LOCK.into(),
                debs: None,
            })),
            "distroless-host" => Ok(Base::Distroless(distroless::DistrolessSource::Host)),
            _ => {
                transport::ImageRef::parse(s, "base")?;
                Ok(Base::Image(s.to_string()))
            }
        }
    }
}

/// Facts about the software, turned into `org.opencontainers.image.*` annotations on every
/// manifest and the index (and labels in the config, which `docker inspect` shows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    pub title: Option<String>,
    pub version: Option<String>,
    /// VCS revision (commit id).
    pub revision: Option<String>,
    /// Source repository URL.
    pub source: Option<String>,
    /// SPDX expression.
    pub licenses: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// mtime of every entry and `created` when set; `SOURCE_DATE_EPOCH`, else 0.
    pub source_date_epoch: Option<u64>,
    pub compression: Compression,
    pub base: Base,
    pub metadata: Metadata,
    /// Where compressed layers are kept between builds, to be reused when the same tar is
    /// compressed the same way again; `None`: every layer is compressed.
    pub reuse: Option<reuse::LayerStore>,
}

/// Latest `SOURCE_DATE_EPOCH` an image can carry: 9999-12-31T23:59:59Z.
pub const MAX_SOURCE_DATE_EPOCH: u64 = 253_402_300_799;

impl BuildOptions {
    /// `SOURCE_DATE_EPOCH` from the environment; an unparsable value is an error.
    pub fn source_date_epoch_from_env() -> anyhow::Result<Option<u64>> {
        // One reading for `kiln build` and `kiln image`: a bad value is a usage error (2).
        use crate::error::UsageError;
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(s) if !s.trim().is_empty() => match s.trim().parse::<u64>() {
                // RFC 3339 (the config's `created`) has four-digit years.
                Ok(n) if n <= MAX_SOURCE_DATE_EPOCH => Ok(Some(n)),
                Ok(_) => Err(UsageError(format!(
                    "SOURCE_DATE_EPOCH={s} is after 9999-12-31T23:59:59Z \
                     ({MAX_SOURCE_DATE_EPOCH}), which an image config's RFC 3339 `created` \
                     cannot hold; set it to e.g. `git log -1 --format=%ct`"
                ))
                .into()),
                Err(_) => Err(UsageError(format!(
                    "SOURCE_DATE_EPOCH={s} is not a number of seconds since 1970; unset it or set it to e.g. `git log -1 --format=%ct`"
                ))
                .into()),
            },
            _ => Ok(None),
        }
    }
}

/// Something the caller should show the user; the image is still built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One platform's image in a `BuiltIndex`.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub platform: Platform,
    /// `sha256:…` of the manifest.
    pub manifest: String,
    /// `sha256:…` of the config.
    pub config: String,
    /// Layers, base first.
    pub layers: Vec<layer::LayerInfo>,
}

/// A built multi-platform index, all blobs in memory.
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// `sha256:…` of `index_json`.
    pub digest: String,
    pub index_json: Vec<u8>,
    /// Every blob by digest (`sha256:…`): layers, configs, manifests.
    pub blobs: BTreeMap<String, Vec<u8>>,
    /// Layer blobs not loaded into `blobs` but left where they are (an index merged only
    /// for registries, which stream them and check their digests): only registry outputs
    /// take an index with some.
    pub unread: BTreeMap<String, read::LayerRef>,
    /// kiln's own layer blobs that went only to the outputs opened before the build (every
    /// output an OCI layout: `index::build_index_only_to`), not kept in memory: digest and
    /// size. Only those layouts' writers take an index with some.
    pub ahead: BTreeMap<String, u64>,
    /// Per-platform manifest digests, in the canonical platform order.
    pub manifests: Vec<(Platform, String)>,
    /// Per-platform details, in the same order.
    pub images: Vec<BuiltImage>,
    /// Things the user should know (running as root, ...).
    pub warnings: Vec<Warning>,
}

impl BuiltIndex {
    /// Total size of all blobs plus the index, in bytes.
    pub fn total_size(&self) -> u64 {
        self.blobs.values().map(|b| b.len() as u64).sum::<u64>()
            + self.ahead.values().sum::<u64>()
            + self.index_json.len() as u64
    }
}

/// Run `f` over `items` on as many scoped threads as there are CPUs (more would only
/// make the compressors evict each other's caches), results in input order.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    crate::par::par_map(items, crate::par::cpus(), f)
}
