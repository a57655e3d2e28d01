//! Index assembly, `build_index`: per-platform images (base layers + one deterministic kiln layer + config +
//! manifest) and the index over them, all in memory.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};

use super::base::{self, BaseImage};
use super::image::{self, Blob, ConfigInput};
use super::layer::{self, BlobSink, Layer, TarStream};
use super::read_image;
use super::{
    Base, BuildOptions, BuiltImage, BuiltIndex, EntrySource, LayerEntry, Metadata, PlatformImage,
    par_map,
};
use crate::target::Platform;

/// Resolve `opts.base` for each platform, in order.
fn resolve_bases(platforms: &[&Platform], opts: &BuildOptions) -> anyhow::Result<Vec<BaseImage>> {
    match &opts.base {
        Base::Scratch => Ok(platforms.iter().map(|_| BaseImage::default()).collect()),
        Base::Distroless(src) => {
            let b = super::distroless::resolve(src, opts)?;
            Ok(platforms.iter().map(|_| b.clone()).collect())
        }
        Base::Image(reference) => {
            let image = read_image(reference)?;
            platforms
                .iter()
                .map(|p| base::from_image(&image, p))
                .collect()
        }
    }
}

/// A user name must be defined by the base it runs on (unless kiln's own layer brings the
/// account files): the checks `validate::image_spec` could not make before the base was read.
fn check_users(images: &[PlatformImage], bases: &[BaseImage], base: &str) -> anyhow::Result<()> {
    for (img, b) in images.iter().zip(bases) {
        let user = img.spec.user.trim();
        let named = user
            .split(':')
            .any(|p| !p.is_empty() && !p.bytes().all(|c| c.is_ascii_digit()));
        let own = img
            .entries
            .iter()
            .any(|e| matches!(e.path.trim_start_matches('/'), "etc/passwd" | "etc/group"));
        if named && !own {
            let files = base::account_files(&b.layers)
                .with_context(|| format!("reading /etc/passwd of {base} ({})", img.platform))?;
            super::validate::user_in_base(user, base, &files)?;
        }
    }
    Ok(())
}

/// `org.opencontainers.image.*` annotations from the metadata; `created` only with
/// `SOURCE_DATE_EPOCH`, so that builds without it stay reproducible.
pub fn auto_annotations(m: &Metadata, source_date_epoch: Option<u64>) -> BTreeMap<String, String> {
    use oci_spec::image as a;
    let mut out = BTreeMap::new();
    let pairs = [
        (a::ANNOTATION_TITLE, &m.title),
        (a::ANNOTATION_VERSION, &m.version),
        (a::ANNOTATION_REVISION, &m.revision),
        (a::ANNOTATION_SOURCE, &m.source),
        (a::ANNOTATION_LICENSES, &m.licenses),
        (a::ANNOTATION_DESCRIPTION, &m.description),
    ];
    for (k, v) in pairs {
        if let Some(v) = v.as_ref().filter(|v| !v.trim().is_empty()) {
            out.insert(k.to_string(), v.trim().to_string());
        }
    }
    if let Some(t) = source_date_epoch {
        out.insert(a::ANNOTATION_CREATED.to_string(), image::rfc3339(t));
    }
    out
}

/// `created_by` of one of kiln's layers: what it adds, in path order (and for a named
/// layer, its name).
fn layer_history(entries: &[LayerEntry], name: Option<&str>) -> String {
    let mut paths: Vec<&str> = entries
        .iter()
        .filter(|e| !matches!(e.source, EntrySource::Dir))
        .map(|e| e.path.as_str())
        .collect();
    paths.sort();
    match name {
        Some(n) => format!("kiln: {n}: add {}", paths.join(" ")),
        None => format!("kiln: add {}", paths.join(" ")),
    }
}

/// Build every platform's image and the index over them. Identical layers (the same
/// files for several platforms) are compressed once. Nothing is written anywhere.
pub fn build_index(images: &[PlatformImage], opts: &BuildOptions) -> anyhow::Result<BuiltIndex> {
    build_index_to(images, opts, &[])
}

/// [`build_index`], handing each of kiln's own layer blobs to `sinks` while it is
/// compressed (an output opened before the build, `output::Opened`, writes it while the
/// other layers still compress). Base layers, configs and manifests are not given to them.
pub fn build_index_to(
    images: &[PlatformImage],
    opts: &BuildOptions,
    sinks: &[&dyn BlobSink],
) -> anyhow::Result<BuiltIndex> {
    build(images, opts, sinks, true)
}

/// [`build_index_to`] when `sinks` are every output (OCI layouts opened before the build:
/// `output::Opened::takes_all`): kiln's own layer blobs go only to them and are not kept in
/// memory (listed in [`BuiltIndex::ahead`]), unless `opts.reuse` keeps them for the next
/// build.
pub fn build_index_only_to(
    images: &[PlatformImage],
    opts: &BuildOptions,
    sinks: &[&dyn BlobSink],
) -> anyhow::Result<BuiltIndex> {
    build(images, opts, sinks, sinks.is_empty())
}

fn build(
    images: &[PlatformImage],
    opts: &BuildOptions,
    sinks: &[&dyn BlobSink],
    keep: bool,
) -> anyhow::Result<BuiltIndex> {
    if images.is_empty() {
        bail!("no platform images to pack: give at least one binary");
    }
    let mut seen = BTreeSet::new();
    for i in images {
        if !seen.insert(i.platform.clone()) {
            bail!(
                "platform {} is given twice: an image index holds one image per platform",
                i.platform
            );
        }
    }
    // Canonical platform order (os, architecture, variant), so the index digest does not
    // depend on the order binaries were given in (`merge::merged_index` uses it too).
    let mut sorted = images.to_vec();
    sorted.sort_by(|a, b| a.platform.cmp(&b.platform));
    let images = &sorted[..];
    let auto = auto_annotations(&opts.metadata, opts.source_date_epoch);

    let platforms: Vec<&crate::target::Platform> = images.iter().map(|i| &i.platform).collect();
    let bases: Vec<BaseImage> =
        resolve_bases(&platforms, opts).context("preparing the base image")?;
    if let Base::Image(reference) = &opts.base {
        check_users(images, &bases, reference)?;
    }
    let OwnLayers {
        compressed,
        kept,
        per_image,
    } = own_layers(images, opts, sinks, keep)?;

    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut warnings: Vec<super::Warning> = Vec::new();
    for w in bases.iter().flat_map(|b| &b.warnings) {
        if !warnings.contains(w) {
            warnings.push(w.clone());
        }
    }
    let mut built = Vec::new();
    let mut manifest_blobs = Vec::new();
    for ((img, base), own) in images.iter().zip(&bases).zip(&per_image) {
        let mut layers: Vec<&Layer> = base.layers.iter().collect();
        let mut history = base.history.clone();
        for (diff_id, h) in own {
            if let Some(l) = compressed.get(diff_id) {
                layers.push(l);
                history.push(h.clone());
            }
        }
        let (config, w) = image::config(&ConfigInput {
            platform: &img.platform,
            spec: &img.spec,
            base: base.config.as_ref(),
            base_env: &base.env,
            diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
            history,
            created: opts.source_date_epoch,
            auto_labels: &auto,
        })
        .with_context(|| format!("writing the image config for {}", img.platform))?;
        for w in w {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        let mut annotations = base.annotations.clone();
        annotations.extend(auto.clone());
        annotations.extend(img.spec.annotations.clone());
        let descs = layers
            .iter()
            .map(|l| image::layer_descriptor(l))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let manifest = image::manifest(&config, &descs, &annotations)?;
        // kiln's own layers move into `blobs` at the end; base layers are copied.
        for l in &base.layers {
            blobs
                .entry(l.digest.clone())
                .or_insert_with(|| l.blob.clone());
        }
        built.push(BuiltImage {
            platform: img.platform.clone(),
            manifest: manifest.digest.clone(),
            config: config.digest.clone(),
            layers: layers.iter().map(|l| l.info()).collect(),
        });
        blobs.insert(config.digest.clone(), config.bytes);
        manifest_blobs.push((img.platform.clone(), manifest));
    }

    let refs: Vec<(crate::target::Platform, &Blob)> =
        manifest_blobs.iter().map(|(p, b)| (p.clone(), b)).collect();
    let index = image::index(&refs, &index_annotations(images, &auto))?;
    let manifests = manifest_blobs
        .iter()
        .map(|(p, b)| (p.clone(), b.digest.clone()))
        .collect();
    for (_, m) in manifest_blobs {
        blobs.insert(m.digest, m.bytes);
    }
    let mut ahead = BTreeMap::new();
    for (_, l) in compressed {
        if kept {
            blobs.insert(l.digest, l.blob);
        } else {
            ahead.insert(l.digest, l.size);
        }
    }
    Ok(BuiltIndex {
        digest: index.digest,
        index_json: index.bytes,
        blobs,
        unread: BTreeMap::new(),
        ahead,
        manifests,
        images: built,
        warnings,
    })
}

/// The index carries the automatic annotations and those every image shares.
fn index_annotations(
    images: &[PlatformImage],
    auto: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = auto.clone();
    if let Some(first) = images.first() {
        for (k, v) in &first.spec.annotations {
            if images.iter().all(|i| i.spec.annotations.get(k) == Some(v)) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

/// Each tar compressed, or its blob from `opts.reuse` when one was kept for it (handed to
/// `sinks` like a fresh one); fresh blobs are kept there for the next build (so kept in
/// memory whatever `keep` says). Also says whether the blobs were kept in memory (else
/// they went only to `sinks`, and [`layer::Compressed::blob`] is empty).
fn compress_or_reuse(
    tars: &[TarStream],
    opts: &BuildOptions,
    sinks: &[&dyn BlobSink],
    keep: bool,
) -> anyhow::Result<(Vec<layer::Compressed>, bool)> {
    let c = opts.compression;
    let Some(store) = opts
        .reuse
        .as_ref()
        .filter(|_| c != super::Compression::None)
    else {
        let streams: Vec<&TarStream> = tars.iter().collect();
        return Ok((layer::compress_all(&streams, c, sinks, keep)?, keep));
    };
    // A lookup needs the tar's digest first: one more pass over the tar when it misses
    // (a hash is ~20x faster than the compression a hit saves).
    let found: Vec<Option<layer::Compressed>> = par_map(tars, |t| store.get(&t.diff_id(), c));
    let misses: Vec<&TarStream> = tars
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(t, _)| t)
        .collect();
    let mut fresh = layer::compress_all(&misses, c, sinks, true)?.into_iter();
    let mut done = Vec::with_capacity(tars.len());
    for f in found {
        match f {
            Some(hit) => {
                for sink in sinks {
                    let mut w = sink.start()?;
                    w.write(&hit.blob)?;
                    w.finish(&hit.digest)?;
                }
                done.push(hit);
            }
            None => {
                let made = fresh.next().expect("one blob per tar compressed");
                store.put(&made, c);
                done.push(made);
            }
        }
    }
    Ok((done, true))
}

/// kiln's own layers of every image: each distinct layer compressed once (by diff_id), and
/// per image the (diff_id, history) of its layers in order.
struct OwnLayers {
    compressed: BTreeMap<String, Layer>,
    /// The blobs are in `compressed` (else they went only to the sinks, and each
    /// [`Layer::blob`] is empty).
    kept: bool,
    per_image: Vec<Vec<(String, String)>>,
}

/// Tars first (files mapped, not copied), then each distinct tar is compressed once and
/// hashed as it is (the diff_id and the blob's digest in the same pass); all cores share
/// the work and each blob goes to `sinks` as it is made. An image's own layers are its
/// `entries` (when any), then each named layer (when not empty).
fn own_layers(
    images: &[PlatformImage],
    opts: &BuildOptions,
    sinks: &[&dyn BlobSink],
    keep: bool,
) -> anyhow::Result<OwnLayers> {
    let mtime = opts.source_date_epoch.unwrap_or(0);
    let wanted: Vec<(usize, &[LayerEntry], String)> = images
        .iter()
        .enumerate()
        .flat_map(|(i, img)| {
            let first = (!img.entries.is_empty())
                .then(|| (i, img.entries.as_slice(), layer_history(&img.entries, None)));
            first
                .into_iter()
                .chain(
                    img.layers
                        .iter()
                        .filter(|l| !l.entries.is_empty())
                        .map(move |l| {
                            (
                                i,
                                l.entries.as_slice(),
                                layer_history(&l.entries, Some(&l.name)),
                            )
                        }),
                )
        })
        .collect();
    // The same entries make the same tar: each distinct list is built and compressed once
    // (a layer shared by several platforms, such as a component's static files).
    let mut unique: Vec<usize> = Vec::new();
    let which: Vec<usize> = wanted
        .iter()
        .enumerate()
        .map(|(w, (_, entries, _))| {
            unique
                .iter()
                .position(|&u| wanted[u].1 == *entries)
                .unwrap_or_else(|| {
                    unique.push(w);
                    unique.len() - 1
                })
        })
        .collect();
    let tars: Vec<TarStream> = par_map(&unique, |&u| {
        let (i, entries, _) = &wanted[u];
        TarStream::build(entries, mtime)
            .with_context(|| format!("building the layer for {}", images[*i].platform))
    })
    .into_iter()
    .collect::<anyhow::Result<_>>()?;
    let (done, kept) = compress_or_reuse(&tars, opts, sinks, keep)?;
    let diff_ids: Vec<String> = done.iter().map(|c| c.diff_id.clone()).collect();
    let compressed: BTreeMap<String, Layer> = done
        .into_iter()
        .map(|c| {
            let l = Layer {
                media_type: layer::media_type(opts.compression).to_string(),
                digest: c.digest,
                diff_id: c.diff_id,
                blob: c.blob,
                size: c.size,
            };
            (l.diff_id.clone(), l)
        })
        .collect();
    let mut per_image: Vec<Vec<(String, String)>> = vec![Vec::new(); images.len()];
    for ((i, _, history), u) in wanted.iter().zip(&which) {
        per_image[*i].push((diff_ids[*u].clone(), history.clone()));
    }
    Ok(OwnLayers {
        compressed,
        kept,
        per_image,
    })
}
