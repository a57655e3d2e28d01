//! `docker save` archives: `manifest.json` naming configs and layer tars by path. Layers
//! are hashed as streams (the format names them by path, not digest).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_json::Value;

use super::oci::{parse_config, platform_of};
use super::store::{Store, hash_stream};
use super::{LayerRef, PlatformManifest, ReadImage};
use crate::digest::sha256_digest;
use crate::oci::layer;

pub(super) fn read_docker_archive(reference: &str, store: &Store) -> anyhow::Result<ReadImage> {
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
            // The format names layers by path, not digest: hash them now, streaming.
            let (digest, size, head) = hash_stream(source.open()?)
                .with_context(|| format!("reading layer {n} of the docker archive"))?;
            let media_type = match crate::oci::decode::Codec::sniff(&head) {
                crate::oci::decode::Codec::Gzip => layer::MEDIA_LAYER_GZIP,
                crate::oci::decode::Codec::Zstd => layer::MEDIA_LAYER_ZSTD,
                crate::oci::decode::Codec::Plain => layer::MEDIA_LAYER_TAR,
            };
            layers.push(LayerRef {
                media_type: media_type.into(),
                digest,
                diff_id,
                size,
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
