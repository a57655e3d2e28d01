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
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use oci_spec::image::ImageConfiguration;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::layer::{self, Layer};
use crate::digest::sha256_digest;
use crate::error::UsageError;
use crate::target::Platform;

/// Largest manifest, index or config kiln reads (they are JSON documents of a few KiB).
pub const MAX_DOCUMENT: u64 = 8 << 20;

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

/// Where a blob's bytes are.
#[derive(Debug, Clone)]
enum BlobSource {
    File(PathBuf),
    Member {
        archive: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl BlobSource {
    fn location(&self) -> anyhow::Result<(&Path, u64, u64)> {
        Ok(match self {
            BlobSource::File(p) => (p, 0, fs_err::metadata(p)?.len()),
            BlobSource::Member {
                archive,
                offset,
                len,
            } => (archive, *offset, *len),
        })
    }

    /// A reader over the blob's bytes, without loading them.
    fn open(&self) -> anyhow::Result<std::io::Take<fs_err::File>> {
        let (path, offset, len) = self.location()?;
        let mut f = fs_err::File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(f.take(len))
    }

    fn read(&self, limit: u64) -> anyhow::Result<Vec<u8>> {
        let (path, _, len) = self.location()?;
        if len > limit {
            bail!(
                "{} holds a {len}-byte document where at most {limit} bytes are expected: is this an image?",
                path.display()
            );
        }
        let mut buf = Vec::with_capacity(len as usize);
        self.open()?.read_to_end(&mut buf)?;
        if (buf.len() as u64) != len {
            bail!("{} is truncated", path.display());
        }
        Ok(buf)
    }
}

impl LayerRef {
    /// The blob as stored (compressed), checked against its digest.
    pub fn blob(&self) -> anyhow::Result<Vec<u8>> {
        let b = self.source.read(u64::MAX)?;
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
        let tar = layer::decompress(&self.blob()?, &self.media_type)?;
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
        let mt = self.media_type.as_str();
        let inner: Box<dyn Read + Send> = if mt.ends_with("gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(raw))
        } else if mt.ends_with("zstd") {
            Box::new(zstd::stream::read::Decoder::new(raw)?)
        } else {
            Box::new(raw)
        };
        Ok(Box::new(Verify::new(
            inner,
            &self.diff_id,
            "uncompressed layer",
        )))
    }

    /// The layer with its bytes, ready to be reused in a new image.
    pub fn load(&self) -> anyhow::Result<Layer> {
        Ok(Layer {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            diff_id: self.diff_id.clone(),
            blob: self.blob()?,
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

/// What can be read: parsed like skopeo names (the path ends at the first `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    OciDir { dir: PathBuf, tag: Option<String> },
    OciArchive { file: PathBuf, tag: Option<String> },
    DockerArchive { file: PathBuf },
}

/// Parse `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker-archive:FILE`.
pub fn parse_ref(reference: &str) -> Result<ImageRef, UsageError> {
    let forms = "oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE";
    let (transport, rest) = reference
        .split_once(':')
        .ok_or_else(|| UsageError(format!("image `{reference}` has no transport: use {forms}")))?;
    let (path, tag) = match rest.split_once(':') {
        Some((p, t)) => (PathBuf::from(p), Some(t.to_string())),
        None => (PathBuf::from(rest), None),
    };
    if path.as_os_str().is_empty() {
        return Err(UsageError(format!(
            "image `{reference}` has no path: use {forms}"
        )));
    }
    match transport {
        "oci" | "oci-layout" => Ok(ImageRef::OciDir { dir: path, tag }),
        "oci-archive" => Ok(ImageRef::OciArchive { file: path, tag }),
        // The reference part of docker-archive:FILE:REPO:TAG picks nothing when reading.
        "docker-archive" => Ok(ImageRef::DockerArchive { file: path }),
        _ => Err(UsageError(format!(
            "cannot read images from `{transport}:`: use {forms}"
        ))),
    }
}

/// Read an image from a layout or archive. See the module docs.
pub fn read_image(reference: &str) -> anyhow::Result<ReadImage> {
    let r = parse_ref(reference)?;
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
        ImageRef::DockerArchive { file } => {
            return read_docker_archive(reference, &Store::tar(&file)?);
        }
    };
    read_oci(reference, &store, tag.as_deref())
        .with_context(|| format!("reading image {reference}"))
}

/// A directory or a tar file holding named members.
enum Store {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        /// Member name → (data offset, length).
        members: BTreeMap<String, (u64, u64)>,
    },
}

impl Store {
    fn tar(file: &Path) -> anyhow::Result<Store> {
        let f = fs_err::File::open(file)?;
        let mut a = tar::Archive::new(f);
        let mut members = BTreeMap::new();
        for e in a
            .entries_with_seek()
            .with_context(|| format!("reading {} as a tar", file.display()))?
        {
            let e = e.with_context(|| format!("reading {} as a tar", file.display()))?;
            if e.header().entry_type().is_file() {
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let name = name.trim_start_matches("./").to_string();
                members.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        Ok(Store::Tar {
            file: file.to_path_buf(),
            members,
        })
    }

    fn source(&self, name: &str) -> anyhow::Result<BlobSource> {
        match self {
            Store::Dir(d) => {
                let p = d.join(name);
                if !p.is_file() {
                    bail!("{} is missing", p.display());
                }
                Ok(BlobSource::File(p))
            }
            Store::Tar { file, members } => {
                let (offset, len) = members
                    .get(name)
                    .with_context(|| format!("{} has no member {name}", file.display()))?;
                Ok(BlobSource::Member {
                    archive: file.clone(),
                    offset: *offset,
                    len: *len,
                })
            }
        }
    }

    fn document(&self, name: &str) -> anyhow::Result<Vec<u8>> {
        self.source(name)?.read(MAX_DOCUMENT)
    }

    /// A blob by digest, checked.
    fn blob(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let b = self.document(&blob_name(digest)?)?;
        let got = sha256_digest(&b);
        if got != digest {
            bail!("blob {digest} is corrupt: its content hashes to {got}");
        }
        Ok(b)
    }
}

fn blob_name(digest: &str) -> anyhow::Result<String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("unsupported digest `{digest}`: kiln reads sha256 only"))?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Docker media types → OCI ones; foreign layers are refused.
fn oci_layer_type(mt: &str) -> anyhow::Result<String> {
    Ok(match mt {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => layer::MEDIA_LAYER_GZIP.into(),
        "application/vnd.docker.image.rootfs.diff.tar" => layer::MEDIA_LAYER_TAR.into(),
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => layer::MEDIA_LAYER_ZSTD.into(),
        m if m.starts_with("application/vnd.oci.image.layer.v1.tar")
            && !m.contains("nondistributable") =>
        {
            m.into()
        }
        m => bail!("layer media type {m} is not supported (foreign or non-distributable layer)"),
    })
}

fn platform_of(cfg: &ImageConfiguration) -> Platform {
    Platform {
        os: cfg.os().to_string(),
        architecture: cfg.architecture().to_string(),
        variant: cfg.variant().clone(),
    }
}

fn parse_config(bytes: &[u8], what: &str) -> anyhow::Result<ImageConfiguration> {
    ImageConfiguration::from_reader(bytes).with_context(|| format!("{what} is not an image config"))
}

fn read_oci(reference: &str, store: &Store, tag: Option<&str>) -> anyhow::Result<ReadImage> {
    let index: Value = serde_json::from_slice(&store.document("index.json")?)
        .context("index.json is not valid JSON")?;
    let entries = index["manifests"].as_array().cloned().unwrap_or_default();
    let tag_of = |d: &Value| {
        d["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .map(str::to_string)
    };
    let chosen: Vec<&Value> = match tag {
        Some(t) => entries
            .iter()
            .filter(|d| tag_of(d).as_deref() == Some(t))
            .collect(),
        None => entries.iter().collect(),
    };
    let tags: Vec<String> = entries.iter().filter_map(tag_of).collect();
    let top = match chosen.as_slice() {
        [one] => *one,
        [] => bail!(
            "no image tagged `{}`; tags: {}",
            tag.unwrap_or(""),
            if tags.is_empty() {
                "none".into()
            } else {
                tags.join(", ")
            }
        ),
        _ => bail!(
            "the layout holds {} images: name one with :TAG ({})",
            chosen.len(),
            if tags.is_empty() {
                "they are untagged".into()
            } else {
                tags.join(", ")
            }
        ),
    };
    let top_digest = top["digest"]
        .as_str()
        .context("index.json entry has no digest")?
        .to_string();
    let mut platforms = Vec::new();
    collect(store, top, &mut platforms, 0)?;
    Ok(ReadImage {
        reference: reference.to_string(),
        digest: Some(top_digest),
        platforms,
    })
}

/// Walk a descriptor down to image manifests.
fn collect(
    store: &Store,
    desc: &Value,
    out: &mut Vec<PlatformManifest>,
    depth: usize,
) -> anyhow::Result<()> {
    if depth > 4 {
        bail!("image indexes are nested too deeply");
    }
    let digest = desc["digest"]
        .as_str()
        .context("a descriptor has no digest")?;
    let bytes = store.blob(digest)?;
    let doc: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{digest} is not valid JSON"))?;
    if let Some(children) = doc["manifests"].as_array() {
        for c in children {
            // Attestations and other non-images (buildx writes them as unknown/unknown).
            if c["platform"]["os"] == "unknown"
                || c["annotations"]["vnd.docker.reference.type"].is_string()
            {
                continue;
            }
            collect(store, c, out, depth + 1)?;
        }
        return Ok(());
    }
    let config_digest = doc["config"]["digest"]
        .as_str()
        .with_context(|| format!("manifest {digest} has no config"))?
        .to_string();
    let config_json = store.blob(&config_digest)?;
    let config = parse_config(&config_json, &config_digest)?;
    let diff_ids = config.rootfs().diff_ids().clone();
    let descs = doc["layers"].as_array().cloned().unwrap_or_default();
    if descs.len() != diff_ids.len() {
        bail!(
            "manifest {digest} has {} layers but its config lists {} diff_ids",
            descs.len(),
            diff_ids.len()
        );
    }
    let mut layers = Vec::new();
    for (d, diff_id) in descs.iter().zip(diff_ids) {
        let ld = d["digest"].as_str().context("a layer has no digest")?;
        layers.push(LayerRef {
            media_type: oci_layer_type(d["mediaType"].as_str().unwrap_or(""))?,
            digest: ld.to_string(),
            diff_id,
            size: d["size"].as_u64().unwrap_or(0),
            source: store.source(&blob_name(ld)?)?,
        });
    }
    let annotations = doc["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    // The index's descriptor says which platform it serves (selection is by it); the
    // config's own fields are the fallback for a manifest named directly.
    let platform = match (
        desc["platform"]["os"].as_str(),
        desc["platform"]["architecture"].as_str(),
    ) {
        (Some(os), Some(arch)) => Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: desc["platform"]["variant"].as_str().map(str::to_string),
        },
        _ => platform_of(&config),
    };
    out.push(PlatformManifest {
        platform,
        manifest_digest: digest.to_string(),
        manifest_json: bytes,
        annotations,
        config_digest,
        config_json,
        config,
        layers,
    });
    Ok(())
}

fn read_docker_archive(reference: &str, store: &Store) -> anyhow::Result<ReadImage> {
    let manifest: Value = serde_json::from_slice(&store.document("manifest.json")?)
        .context("manifest.json of the docker archive is not valid JSON")?;
    let mut platforms = Vec::new();
    for entry in manifest.as_array().context("manifest.json is not a list")? {
        let config_name = entry["Config"]
            .as_str()
            .context("manifest.json entry has no Config")?;
        let config_json = store.document(config_name)?;
        let config = parse_config(&config_json, config_name)?;
        let diff_ids = config.rootfs().diff_ids().clone();
        let names = entry["Layers"].as_array().cloned().unwrap_or_default();
        if names.len() != diff_ids.len() {
            bail!(
                "{config_name}: {} layers but {} diff_ids",
                names.len(),
                diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for (n, diff_id) in names.iter().zip(diff_ids) {
            let n = n.as_str().context("a layer name is not a string")?;
            let source = store.source(n)?;
            // The format names layers by path, not digest: hash them now.
            let blob = source.read(u64::MAX)?;
            let media_type = if blob.starts_with(&[0x1f, 0x8b]) {
                layer::MEDIA_LAYER_GZIP
            } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                layer::MEDIA_LAYER_ZSTD
            } else {
                layer::MEDIA_LAYER_TAR
            };
            layers.push(LayerRef {
                media_type: media_type.into(),
                digest: sha256_digest(&blob),
                diff_id,
                size: blob.len() as u64,
                source,
            });
        }
        platforms.push(PlatformManifest {
            platform: platform_of(&config),
            manifest_digest: sha256_digest(&config_json),
            manifest_json: serde_json::to_vec(entry)?,
            annotations: BTreeMap::new(),
            config_digest: sha256_digest(&config_json),
            config_json,
            config,
            layers,
        });
    }
    Ok(ReadImage {
        reference: reference.to_string(),
        digest: None,
        platforms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_platforms() {
        assert_eq!(
            parse_ref("oci:a:b").unwrap(),
            ImageRef::OciDir {
                dir: "a".into(),
                tag: Some("b".into())
            }
        );
        assert_eq!(
            parse_ref("docker-archive:x.tar:hello:1").unwrap(),
            ImageRef::DockerArchive {
                file: "x.tar".into()
            }
        );
        assert!(parse_ref("docker://x").is_err());
        assert!(parse_ref("nothing").is_err());
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert!(platform_matches(&p("linux/arm64/v8"), &p("linux/arm64")));
        assert!(platform_matches(&p("linux/arm64"), &p("linux/arm64/v8")));
        assert!(!platform_matches(&p("linux/arm/v6"), &p("linux/arm/v7")));
        assert!(!platform_matches(&p("linux/amd64"), &p("linux/arm64")));
    }
}
