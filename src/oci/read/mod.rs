//! Reading images back: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` and
//! `docker-archive:FILE`, into per-platform manifests, configs and layers.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let image = kiln::oci::read_image("oci:dist/image:1.0")?;
//! for p in &image.platforms {
//!     println!("{} {}", p.platform, p.manifest_digest);
//!     for layer in &p.layers {
//!         let tar = layer.tar()?; // decompressed, digest-checked
//!         let mut archive = tar::Archive::new(tar.as_slice());
//!         for entry in archive.entries()? {
//!             let entry = entry?;
//!             println!("  {}", entry.path()?.display());
//!         }
//!     }
//! }
//! let arm = image.for_platform(&"linux/arm64".parse().unwrap())?; // clear error if absent
//! # let _ = arm; Ok(()) }
//! ```
//!
//! Manifests, configs and indexes are read into memory (at most `MAX_DOCUMENT` bytes each);
//! layers stay where they are until `LayerRef::blob` or `LayerRef::tar` reads one (or
//! `LayerRef::open` streams it), and are checked against their digests then. Docker media types are accepted as well as OCI ones.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, bail};
use oci_spec::image::ImageConfiguration;
use sha2::{Digest as _, Sha256};

mod docker;
mod oci;
mod store;

pub use self::oci::{parse_config, platform_of};

use self::store::{BlobSource, Store};
use super::layer::Layer;
use super::transport::ImageRef;
use crate::digest::sha256_digest;
use crate::target::Platform;

/// Largest manifest, index or config kiln reads (they are JSON documents of a few KiB).
pub const MAX_DOCUMENT: u64 = 8 << 20;
/// Largest compressed layer kiln loads into memory to reuse it (a `--base` layer); layers
/// are otherwise streamed.
pub const MAX_LAYER_BLOB: u64 = 4 << 30;
/// Most distinct image manifests one reference may lead to (after de-duplication by digest).
pub const MAX_MANIFESTS: usize = 256;
/// Deepest nesting of indexes below the top-level one.
pub const MAX_INDEX_DEPTH: usize = 4;

/// An image read from a layout or an archive.
#[derive(Debug, Clone)]
pub struct ReadImage {
    /// What was read, as given (`oci:dir:tag`).
    pub reference: String,
    /// Digest of the top-level index or manifest (the docker-archive format has none).
    pub digest: Option<String>,
    /// One per platform, in the order of the index.
    pub platforms: Vec<PlatformManifest>,
}

/// One platform's image.
#[derive(Debug, Clone)]
pub struct PlatformManifest {
    pub platform: Platform,
    /// `sha256:…` of the manifest (for docker-archive: of the config, the image id).
    pub manifest_digest: String,
    /// The manifest as stored (for docker-archive: its `manifest.json` entry).
    pub manifest_json: Vec<u8>,
    /// The manifest's annotations, if any.
    pub annotations: BTreeMap<String, String>,
    pub config_digest: String,
    pub config_json: Vec<u8>,
    pub config: ImageConfiguration,
    /// Bottom first.
    pub layers: Vec<LayerRef>,
}

/// Brings a blob onto the disk when it is first read (a registry's blob cache) and says
/// where it is then.
pub trait BlobFetch: Send + Sync + std::fmt::Debug {
    fn fetch(&self, digest: &str) -> anyhow::Result<std::path::PathBuf>;
}

/// One layer, read when asked.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// OCI media type (docker types are mapped to their OCI equivalents).
    pub media_type: String,
    pub digest: String,
    /// `sha256:…` of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: String,
    pub size: u64,
    source: BlobSource,
}

impl LayerRef {
    /// A layer whose blob `from` brings when it is first read.
    pub fn fetched(
        media_type: &str,
        digest: &str,
        diff_id: &str,
        size: u64,
        from: std::sync::Arc<dyn BlobFetch>,
    ) -> anyhow::Result<LayerRef> {
        Ok(LayerRef {
            media_type: oci::oci_layer_type(media_type)?,
            digest: digest.to_string(),
            diff_id: diff_id.to_string(),
            size,
            source: BlobSource::Fetch {
                from,
                digest: digest.to_string(),
            },
        })
    }

    /// The blob as stored (compressed), not checked: for a sink that checks every digest
    /// itself (a registry refuses an upload whose bytes do not hash to the digest named).
    pub fn blob_unchecked(&self) -> anyhow::Result<Vec<u8>> {
        self.source.read(MAX_LAYER_BLOB)
    }

    /// The blob as stored (compressed), unread and unchecked: its length on disk and a
    /// reader over it, for a sink that streams it and checks the digest itself (a registry).
    pub fn stored(&self) -> anyhow::Result<(u64, std::io::Take<fs_err::File>)> {
        let (_, _, len) = self.source.location()?;
        Ok((len, self.source.open()?))
    }

    /// The blob as stored (compressed), checked against its digest.
    pub fn blob(&self) -> anyhow::Result<Vec<u8>> {
        let b = self.source.read(MAX_LAYER_BLOB)?;
        let got = sha256_digest(&b);
        if got != self.digest {
            bail!(
                "layer {} is corrupt: its content hashes to {got}",
                self.digest
            );
        }
        Ok(b)
    }

    /// The uncompressed tar, checked against the diff_id.
    pub fn tar(&self) -> anyhow::Result<Vec<u8>> {
        let tar = super::layer::decompress(&self.blob()?, &self.media_type)?;
        let got = sha256_digest(&tar);
        if got != self.diff_id {
            bail!(
                "layer {} does not match the config's diff_id {} (it decompresses to {got})",
                self.digest,
                self.diff_id
            );
        }
        Ok(tar)
    }

    /// The uncompressed tar as a stream, for layers too large to hold in memory. Both
    /// digests are checked when the stream reaches its end, and a mismatch is an
    /// `InvalidData` error from that read. `tar::Archive` stops at the end-of-archive
    /// blocks, so drain what is left to get the check:
    ///
    /// ```no_run
    /// # fn f(layer: &kiln::oci::LayerRef) -> anyhow::Result<()> {
    /// let mut archive = tar::Archive::new(layer.open()?);
    /// for entry in archive.entries()? {
    ///     let entry = entry?;
    ///     println!("{}", entry.path()?.display());
    /// }
    /// std::io::copy(&mut archive.into_inner(), &mut std::io::sink())?; // verifies
    /// # Ok(()) }
    /// ```
    pub fn open(&self) -> anyhow::Result<Box<dyn Read + Send>> {
        let raw = Verify::new(self.source.open()?, &self.digest, "layer blob");
        let inner = super::decode::decoder(
            std::io::BufReader::with_capacity(64 * 1024, raw),
            &self.media_type,
            &format!("layer {}", self.digest),
        )?;
        Ok(Box::new(Verify::new(
            inner,
            &self.diff_id,
            "uncompressed layer",
        )))
    }

    /// Check both digests by streaming the layer through (memory bounded by the decoder's
    /// window, not the layer's size).
    pub fn verify(&self) -> anyhow::Result<()> {
        std::io::copy(&mut self.open()?, &mut std::io::sink())
            .map(|_| ())
            .with_context(|| format!("verifying layer {}", self.digest))
    }

    /// The layer with its bytes, ready to be reused in a new image.
    /// Both digests are checked: a base layer whose config `diff_id` does not match is
    /// refused here rather than copied into kiln's output (where umoci would reject it).
    pub fn load(&self) -> anyhow::Result<Layer> {
        self.verify()?;
        let blob = self.blob()?;
        Ok(Layer {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            diff_id: self.diff_id.clone(),
            size: blob.len() as u64,
            blob,
        })
    }
}

/// Passes bytes through and, at the end, fails unless they hash to `expected`.
struct Verify<R> {
    inner: R,
    hasher: Option<Sha256>,
    expected: String,
    what: &'static str,
}

impl<R: Read> Verify<R> {
    fn new(inner: R, expected: &str, what: &'static str) -> Self {
        Verify {
            inner,
            hasher: Some(Sha256::new()),
            expected: expected.to_string(),
            what,
        }
    }
}

impl<R: Read> Read for Verify<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            if n > 0 || buf.is_empty() {
                h.update(&buf[..n]);
            } else {
                let got = format!(
                    "sha256:{}",
                    hex::encode(self.hasher.take().unwrap_or_default().finalize())
                );
                if got != self.expected {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "{} {} is corrupt: it hashes to {got}",
                            self.what, self.expected
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// Does an image's platform satisfy the one asked for? `linux/arm64` matches
/// `linux/arm64/v8`; otherwise os, architecture and variant must be equal.
pub fn platform_matches(have: &Platform, want: &Platform) -> bool {
    let norm = |p: &Platform| {
        let v = match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        (p.os.clone(), p.architecture.clone(), v)
    };
    norm(have) == norm(want)
}

impl ReadImage {
    /// The image for `want`; an error lists the platforms the image has.
    pub fn for_platform(&self, want: &Platform) -> anyhow::Result<&PlatformManifest> {
        self.platforms
            .iter()
            .find(|p| platform_matches(&p.platform, want))
            .with_context(|| {
                format!(
                    "{} has no {want} image; it has {}",
                    self.reference,
                    self.platform_list()
                )
            })
    }

    /// `linux/amd64, linux/arm64`.
    pub fn platform_list(&self) -> String {
        if self.platforms.is_empty() {
            return "no platform images".into();
        }
        self.platforms
            .iter()
            .map(|p| p.platform.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Read an image from a layout or archive. See the module docs.
pub fn read_image(reference: &str) -> anyhow::Result<ReadImage> {
    let r = ImageRef::parse(reference, "image")?;
    let (store, tag) = match r {
        ImageRef::OciDir { dir, tag } => {
            if !dir.join("index.json").is_file() {
                bail!(
                    "{} is not an OCI image layout (no index.json): write one with `kiln image --output oci:{}`",
                    dir.display(),
                    dir.display()
                );
            }
            (Store::Dir(dir), tag)
        }
        ImageRef::OciArchive { file, tag } => (Store::tar(&file)?, tag),
        ImageRef::DockerArchive { file, .. } => {
            return runnable(docker::read_docker_archive(reference, &Store::tar(&file)?)?);
        }
        // The registry reader sits above this one (it fetches into the cache through
        // `BlobFetch`); `oci::read_image` dispatches to it.
        ImageRef::Registry(_) => {
            bail!("{reference} is in a registry: read it with kiln::oci::read_image")
        }
    };
    let image = oci::read_oci(reference, &store, tag.as_deref())
        .with_context(|| format!("reading image {reference}"))?;
    runnable(image)
}

/// The OCI 1.1 artifacts (SBOMs, provenance) an OCI layout or oci-archive lists in its
/// `index.json` whose `subject` is one of `subjects`; a docker-archive has none.
pub fn layout_attachments(
    reference: &str,
    subjects: &[String],
) -> anyhow::Result<Vec<crate::oci::referrers::Attachment>> {
    use crate::oci::referrers::{attachment, is_artifact_descriptor};
    let store = match ImageRef::parse(reference, "image")? {
        ImageRef::OciDir { dir, .. } => Store::Dir(dir),
        ImageRef::OciArchive { file, .. } => Store::tar(&file)?,
        ImageRef::DockerArchive { .. } | ImageRef::Registry(_) => return Ok(Vec::new()),
    };
    let index: serde_json::Value = serde_json::from_slice(&store.document("index.json")?)
        .context("index.json is not valid JSON")?;
    let mut out = Vec::new();
    for d in index["manifests"].as_array().into_iter().flatten() {
        let Some(digest) = d["digest"].as_str().filter(|_| is_artifact_descriptor(d)) else {
            continue;
        };
        let bytes = store.blob(digest)?;
        if let Some(a) = attachment(digest, &bytes)
            && subjects.contains(&a.subject)
        {
            out.push(a);
        }
    }
    Ok(out)
}

/// A blob of the layout or oci-archive `reference` (an attached document).
pub fn layout_blob(reference: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
    let store = match ImageRef::parse(reference, "image")? {
        ImageRef::OciDir { dir, .. } => Store::Dir(dir),
        ImageRef::OciArchive { file, .. } => Store::tar(&file)?,
        ImageRef::DockerArchive { .. } | ImageRef::Registry(_) => {
            bail!("{reference} holds no attachments")
        }
    };
    store.blob(digest)
}

/// An image with no manifest for any platform (an empty index, or only attestations) has
/// nothing to run or inspect: an error, not "0 files, all fine".
pub(crate) fn runnable(image: ReadImage) -> anyhow::Result<ReadImage> {
    if image.platforms.is_empty() {
        bail!(
            "{} holds no image manifest for any platform (an empty index, or only \
             attestations): there is nothing to run in it",
            image.reference
        );
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_platforms() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert!(platform_matches(&p("linux/arm64/v8"), &p("linux/arm64")));
        assert!(platform_matches(&p("linux/arm64"), &p("linux/arm64/v8")));
        assert!(!platform_matches(&p("linux/arm/v6"), &p("linux/arm/v7")));
        assert!(!platform_matches(&p("linux/amd64"), &p("linux/arm64")));
    }
}
