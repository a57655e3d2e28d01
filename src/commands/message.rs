//! `--message-format json`: one JSON object per line, the same schema for `kiln build`,
//! `kiln image` and `kiln index merge`. Every message has a `reason` (`artifact`, `image`,
//! `index`, `output`; with `docker://` outputs `blob`, `manifest`, `tag`, `pushed`); artifact,
//! image and index messages of a variant carry `variant`, those of a debug twin `debug: true`; the
//! fields of each are the structs below (documented in the README, snapshot-tested in
//! `tests/messages.rs` and, for pushes and merges, `tests/registry.rs`).

use std::io::Write;

use serde::Serialize;

use crate::builders::Artifact;
use crate::oci::registry::Pushed;
use crate::oci::{BuiltImage, BuiltIndex, OutputSpec};

/// One line of `--message-format json` output.
#[derive(Debug, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Message<'a> {
    /// A built, verified binary (`kiln build` only): platform, name, path, sha256, size,
    /// the inspector report, with `--smoke` the first line it printed and, with
    /// `--variant`, the variant.
    Artifact(ArtifactMessage<'a>),
    /// One platform's image.
    Image(ImageMessage),
    /// The multi-platform index, after every output was written.
    Index(IndexMessage),
    /// A release file under the output directory (`kiln build` only): path, digest
    /// (`sha256:…`), size, kind (`sbom`, `provenance`, `archive`, `checksums`, `debug`, `signature`) and
    /// the platform it belongs to (absent for release-wide files).
    Output(&'a crate::pipeline::attest::Written),
    /// A blob is in a registry repository (`docker://` outputs).
    Blob(BlobMessage),
    /// A manifest or index is in a registry repository, by digest.
    Manifest(ManifestMessage),
    /// A tag points at a digest (written last, after everything it reaches).
    Tag(TagMessage),
    /// A push finished: the digest pushed (with `--push-by-digest` and one platform, that
    /// platform's manifest) and `registry/repo@digest` per repository.
    Pushed(PushedMessage),
}

/// `"reason":"artifact"`: the binary's own fields, and the variant it was built with.
#[derive(Debug, Serialize)]
pub struct ArtifactMessage<'a> {
    /// The `[variant.NAME]` it was built with (`kiln build --variant`); absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'a str>,
    /// `sha256:…` of the file, as `output` messages name theirs (`sha256` has the hex only).
    pub digest: String,
    #[serde(flatten)]
    pub artifact: &'a Artifact,
}

impl<'a> ArtifactMessage<'a> {
    pub fn new(variant: Option<&'a str>, artifact: &'a Artifact) -> Self {
        ArtifactMessage {
            variant,
            digest: format!("sha256:{}", artifact.sha256),
            artifact,
        }
    }
}

/// `"reason":"blob"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobMessage {
    /// `registry/repo`.
    pub repository: String,
    pub digest: String,
    pub size: u64,
    /// `exists` (the registry had it), `mounted` (from another repository) or `uploaded`.
    pub action: crate::oci::registry::BlobAction,
}

/// `"reason":"manifest"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestMessage {
    pub repository: String,
    pub digest: String,
}

/// `"reason":"tag"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagMessage {
    /// `registry/repo:tag`.
    pub reference: String,
    pub digest: String,
}

/// `"reason":"pushed"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedMessage {
    pub digest: String,
    pub references: Vec<String>,
    pub by_digest: bool,
}

/// `"reason":"image"`: one platform's image in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageMessage {
    /// The `[variant.NAME]` it was built with (`kiln build --variant`); absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `true` for a debug twin (`--debug-image`: the same layers plus busybox); absent for
    /// the image itself.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
    /// `linux/arm64`, `linux/arm/v7`, ...
    pub platform: String,
    /// `sha256:…` of the image manifest.
    pub manifest: String,
    /// `sha256:…` of the image config.
    pub config: String,
    /// `sha256:…` of each layer blob, base first.
    pub layers: Vec<String>,
    /// Bytes of the layer blobs.
    pub size: u64,
}

/// `"reason":"index"`: the image index and where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexMessage {
    /// As in `image`: the variant it was built with, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// As in `image`: `true` for the debug twins' index, written to the `-debug` outputs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub debug: bool,
    /// `sha256:…` of the index: the digest to pull or pin.
    pub digest: String,
    /// Bytes of every blob plus the index.
    pub size: u64,
    /// The platforms, in index order.
    pub platforms: Vec<String>,
    /// Every output written, normalised (`oci:DIR:TAG`, ...).
    pub outputs: Vec<String>,
}

/// The image and index messages for a built index. `pushed` is what the push to the
/// `docker://` outputs did: with `--push-by-digest` and one platform it put only that
/// platform's manifest, so those outputs are not listed as holding the index.
pub fn index_messages(
    index: &BuiltIndex,
    outputs: &[OutputSpec],
    pushed: Option<&Pushed>,
) -> Vec<Message<'static>> {
    let outputs: Vec<String> = index_outputs(&index.digest, outputs, pushed)
        .iter()
        .map(ToString::to_string)
        .collect();
    image_messages(&index.digest, index.total_size(), &index.images, outputs)
}

/// The outputs that hold the index `digest`: all of them, less the `docker://` ones when
/// the push put another manifest on top (one platform pushed by digest).
pub fn index_outputs<'a>(
    digest: &str,
    outputs: &'a [OutputSpec],
    pushed: Option<&Pushed>,
) -> Vec<&'a OutputSpec> {
    let index_pushed = pushed.is_none_or(|p| p.digest == digest);
    outputs
        .iter()
        .filter(|o| index_pushed || !matches!(o, OutputSpec::Registry(_)))
        .collect()
}

/// An `image` message per platform, then the `index` (also for an index merged in a
/// registry, which has no `BuiltIndex`).
pub fn image_messages(
    digest: &str,
    size: u64,
    images: &[BuiltImage],
    outputs: Vec<String>,
) -> Vec<Message<'static>> {
    let mut out: Vec<Message> = images
        .iter()
        .map(|i| {
            Message::Image(ImageMessage {
                variant: None,
                debug: false,
                platform: i.platform.to_string(),
                manifest: i.manifest.clone(),
                config: i.config.clone(),
                layers: i.layers.iter().map(|l| l.digest.clone()).collect(),
                size: i.layers.iter().map(|l| l.size).sum(),
            })
        })
        .collect();
    out.push(Message::Index(IndexMessage {
        variant: None,
        debug: false,
        digest: digest.to_string(),
        size,
        platforms: images.iter().map(|i| i.platform.to_string()).collect(),
        outputs,
    }));
    out
}

/// Mark the image and index messages as a variant's (`--variant NAME`) and as the debug
/// twins' (`--debug-image`).
pub fn mark(messages: &mut [Message<'_>], variant: Option<&str>, debug: bool) {
    for m in messages {
        let (v, d) = match m {
            Message::Image(i) => (&mut i.variant, &mut i.debug),
            Message::Index(i) => (&mut i.variant, &mut i.debug),
            _ => continue,
        };
        *v = variant.map(str::to_string);
        *d = debug;
    }
}

/// Write messages as JSON lines.
pub fn write(out: &mut impl Write, messages: &[Message]) -> anyhow::Result<()> {
    for m in messages {
        serde_json::to_writer(&mut *out, m)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
