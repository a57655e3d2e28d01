//! OCI layouts and `oci-archive` files: `index.json` down through nested indexes to image
//! manifests, de-duplicated and capped.

use anyhow::{Context, bail};
use oci_spec::image::ImageConfiguration;
use serde_json::Value;

use super::store::{Store, blob_name};
use super::{LayerRef, MAX_INDEX_DEPTH, MAX_MANIFESTS, PlatformManifest, ReadImage};
use crate::oci::layer;
use crate::target::Platform;

/// Docker media types → OCI ones; foreign layers are refused.
pub(super) fn oci_layer_type(mt: &str) -> anyhow::Result<String> {
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

pub fn platform_of(cfg: &ImageConfiguration) -> Platform {
    Platform {
        os: cfg.os().to_string(),
        architecture: cfg.architecture().to_string(),
        variant: cfg.variant().clone(),
    }
}

pub fn parse_config(bytes: &[u8], what: &str) -> anyhow::Result<ImageConfiguration> {
    ImageConfiguration::from_reader(bytes).with_context(|| format!("{what} is not an image config"))
}

pub(super) fn read_oci(
    reference: &str,
    store: &Store,
    tag: Option<&str>,
) -> anyhow::Result<ReadImage> {
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
        // Attached artifacts (OCI 1.1 referrers: SBOMs, provenance) are not images.
        None => entries
            .iter()
            .filter(|d| !crate::oci::referrers::is_artifact_descriptor(d))
            .collect(),
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
    collect(store, top, &mut platforms, &mut Walk::default(), 0)?;
    Ok(ReadImage {
        reference: reference.to_string(),
        digest: Some(top_digest),
        platforms,
    })
}

/// What an index walk has seen: each index is read once and each (manifest, platform) is
/// kept once, however often (or however deeply) the indexes repeat them.
#[derive(Default)]
struct Walk {
    seen: std::collections::BTreeSet<String>,
}

/// Walk a descriptor down to image manifests, de-duplicated by digest, at most
/// [`MAX_INDEX_DEPTH`] indexes deep and [`MAX_MANIFESTS`] manifests wide.
fn collect(
    store: &Store,
    desc: &Value,
    out: &mut Vec<PlatformManifest>,
    walk: &mut Walk,
    depth: usize,
) -> anyhow::Result<()> {
    if depth > MAX_INDEX_DEPTH {
        bail!(
            "image indexes are nested more than {MAX_INDEX_DEPTH} deep (kiln's limit): real \
             images nest one or two; this one is damaged or built to exhaust readers"
        );
    }
    let digest = desc["digest"]
        .as_str()
        .context("a descriptor has no digest")?;
    let key = format!("{digest} {}", desc["platform"]);
    if !walk.seen.insert(key) {
        return Ok(());
    }
    if out.len() >= MAX_MANIFESTS {
        bail!(
            "the image leads to more than {MAX_MANIFESTS} distinct image manifests (kiln's \
             limit, counted after removing repeats): it is damaged or built to exhaust readers"
        );
    }
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
            collect(store, c, out, walk, depth + 1)?;
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
