//! One index over per-platform images made apart (a CI matrix: one job per platform, each
//! pushing by digest), identical to the index one machine would have built: platforms in
//! the canonical order (os, architecture, variant, as `build_index` sorts them), and
//! the annotations every image carries except those naming its base.

use std::collections::BTreeMap;

use anyhow::bail;

use super::image::{self, Blob};
use crate::target::Platform;

/// One platform's manifest going into a merged index.
#[derive(Debug, Clone)]
pub struct Part {
    pub platform: Platform,
    pub digest: String,
    /// The manifest's exact bytes.
    pub bytes: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

/// The index over `parts`, in canonical order. Two parts for one platform are an error.
pub fn merged_index(parts: &mut [Part]) -> anyhow::Result<Blob> {
    if parts.is_empty() {
        bail!("nothing to merge: name at least one image");
    }
    parts.sort_by(|a, b| a.platform.cmp(&b.platform));
    for w in parts.windows(2) {
        if super::read::platform_matches(&w[0].platform, &w[1].platform) {
            bail!(
                "{} and {} are both {}: an index holds one image per platform",
                w[0].digest,
                w[1].digest,
                w[0].platform
            );
        }
    }
    // build_index puts on the index the automatic annotations and those every image
    // shares; on the manifests, those plus the base's. The intersection less the base's
    // gives back the same set.
    let mut shared = parts[0].annotations.clone();
    shared.retain(|k, v| {
        !k.starts_with("org.opencontainers.image.base.")
            && parts.iter().all(|p| p.annotations.get(k) == Some(v))
    });
    let blobs: Vec<Blob> = parts
        .iter()
        .map(|p| Blob {
            digest: p.digest.clone(),
            bytes: p.bytes.clone(),
        })
        .collect();
    let refs: Vec<(Platform, &Blob)> = parts
        .iter()
        .zip(&blobs)
        .map(|(p, b)| (p.platform.clone(), b))
        .collect();
    image::index(&refs, &shared)
}

/// Annotations of a manifest document.
pub fn annotations_of(doc: &serde_json::Value) -> BTreeMap<String, String> {
    doc["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// One index over images read from layouts, archives or registries, with every blob, ready
/// for any sink. Docker archives have no manifests to reuse and are refused. With
/// `check_blobs` false the layer blobs are left unread (in `BuiltIndex::unread`): only for
/// sinks that stream them and check every digest themselves (registries), where a re-push
/// of an unchanged image would otherwise spend most of its time reading and hashing blobs
/// the registry already has.
pub fn merge_images(
    images: &[super::ReadImage],
    check_blobs: bool,
) -> anyhow::Result<super::BuiltIndex> {
    let mut parts = Vec::new();
    let mut blobs = BTreeMap::new();
    let mut unread = BTreeMap::new();
    let mut built = Vec::new();
    for img in images {
        if img.digest.is_none() {
            bail!(
                "{} is a docker archive, which has no OCI manifests to merge: use oci: or oci-archive: images",
                img.reference
            );
        }
        for p in &img.platforms {
            parts.push(Part {
                platform: p.platform.clone(),
                digest: p.manifest_digest.clone(),
                bytes: p.manifest_json.clone(),
                annotations: p.annotations.clone(),
            });
            blobs.insert(p.manifest_digest.clone(), p.manifest_json.clone());
            blobs.insert(p.config_digest.clone(), p.config_json.clone());
            let mut layers = Vec::new();
            for l in &p.layers {
                // The manifest and config are reused byte for byte, so the blob's own
                // digest is the check that matters; decompressing every layer to check
                // its diff_id again made a re-push of an unchanged image several times
                // slower (seen in `cargo xtask bench push`). For registries the blob is
                // not even read here: the push streams it (or finds it there already).
                let size = if check_blobs {
                    let blob = l.blob()?;
                    let size = blob.len() as u64;
                    blobs.insert(l.digest.clone(), blob);
                    size
                } else {
                    let (size, _) = l.stored()?;
                    unread.insert(l.digest.clone(), l.clone());
                    size
                };
                layers.push(super::layer::LayerInfo {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                    size,
                });
            }
            built.push(super::BuiltImage {
                platform: p.platform.clone(),
                manifest: p.manifest_digest.clone(),
                config: p.config_digest.clone(),
                layers,
            });
        }
    }
    let index = merged_index(&mut parts)?;
    built.sort_by(|a, b| a.platform.cmp(&b.platform));
    Ok(super::BuiltIndex {
        digest: index.digest,
        index_json: index.bytes,
        blobs,
        unread,
        ahead: BTreeMap::new(),
        manifests: parts
            .iter()
            .map(|p| (p.platform.clone(), p.digest.clone()))
            .collect(),
        images: built,
        warnings: Vec::new(),
    })
}
