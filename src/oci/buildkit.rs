//! BuildKit's attestation storage (`--attestations buildkit`): one attestation manifest per
//! platform inside the image index, after the runnable manifests, with platform
//! `unknown/unknown` and the annotations `vnd.docker.reference.type: attestation-manifest`
//! and `vnd.docker.reference.digest: <platform manifest>`; each layer one in-toto statement
//! (`application/vnd.in-toto+json`, annotated with its `in-toto.io/predicate-type`). Unlike
//! OCI 1.1 referrers this changes the index (and its digest); platform manifests stay the same.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::BuiltIndex;
use super::json::to_canonical_vec;
use super::referrers::{ANNOTATION_PREDICATE_TYPE, MEDIA_MANIFEST};

/// `vnd.docker.reference.type`.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// `vnd.docker.reference.digest`: the platform manifest an attestation manifest describes.
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The value of `vnd.docker.reference.type` for attestations.
pub const REFERENCE_TYPE_ATTESTATION: &str = "attestation-manifest";
/// An in-toto statement layer.
pub const MEDIA_IN_TOTO: &str = "application/vnd.in-toto+json";
/// The config media type BuildKit gives attestation manifests (an image config whose
/// platform is `unknown/unknown`, for registries and runtimes that expect one).
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One in-toto statement about a platform image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Its `predicateType` (`https://spdx.dev/Document`, `https://slsa.dev/provenance/v1`).
    pub predicate_type: String,
    /// The statement's JSON bytes.
    pub bytes: Vec<u8>,
}

/// The statements about one platform manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attestation {
    /// `sha256:…` of the platform manifest (one of `BuiltIndex::manifests`).
    pub subject: String,
    pub statements: Vec<Statement>,
}

/// `index` with an attestation manifest per entry of `attestations` added to its index (in
/// the order of `index.manifests`) and their blobs. Nothing to attach: `index` unchanged.
pub fn attach(index: &BuiltIndex, attestations: &[Attestation]) -> anyhow::Result<BuiltIndex> {
    let mut out = index.clone();
    let mut doc: Value =
        serde_json::from_slice(&index.index_json).context("reading the built index")?;
    let mut added = Vec::new();
    for (_, digest) in &index.manifests {
        let statements: Vec<&Statement> = attestations
            .iter()
            .filter(|a| &a.subject == digest)
            .flat_map(|a| &a.statements)
            .collect();
        if statements.is_empty() {
            continue;
        }
        let (manifest, blobs) = attestation_manifest(&statements)?;
        let manifest_digest = crate::digest::sha256_digest(&manifest);
        added.push(json!({
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                ANNOTATION_REFERENCE_DIGEST: digest,
                ANNOTATION_REFERENCE_TYPE: REFERENCE_TYPE_ATTESTATION,
            },
            "platform": { "architecture": "unknown", "os": "unknown" },
        }));
        out.blobs.extend(blobs);
        out.blobs.insert(manifest_digest, manifest);
    }
    if attestations
        .iter()
        .any(|a| !index.manifests.iter().any(|(_, d)| *d == a.subject))
    {
        bail!("an attestation names a manifest that is not in the image index");
    }
    if added.is_empty() {
        return Ok(out);
    }
    doc["manifests"]
        .as_array_mut()
        .context("the built index has no manifests")?
        .extend(added);
    out.index_json = to_canonical_vec(&doc)?;
    out.digest = crate::digest::sha256_digest(&out.index_json);
    Ok(out)
}

/// Blobs by digest.
type Blobs = BTreeMap<String, Vec<u8>>;

/// The attestation manifest over `statements` and its blobs (config and layers).
fn attestation_manifest(statements: &[&Statement]) -> anyhow::Result<(Vec<u8>, Blobs)> {
    let mut blobs = BTreeMap::new();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for s in statements {
        let digest = crate::digest::sha256_digest(&s.bytes);
        layers.push(json!({
            "mediaType": MEDIA_IN_TOTO,
            "digest": digest,
            "size": s.bytes.len(),
            "annotations": { ANNOTATION_PREDICATE_TYPE: s.predicate_type },
        }));
        // Uncompressed: the layer's digest is its diff id.
        diff_ids.push(digest.clone());
        blobs.insert(digest, s.bytes.clone());
    }
    let config = to_canonical_vec(&json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))?;
    let config_digest = crate::digest::sha256_digest(&config);
    let manifest = to_canonical_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {
            "mediaType": MEDIA_CONFIG,
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": layers,
    }))?;
    blobs.insert(config_digest, config);
    Ok((manifest, blobs))
}

/// The manifests `index` lists besides its platform images (the attestation manifests),
/// in index order; only those whose bytes it holds.
pub fn listed_manifests(index: &BuiltIndex) -> Vec<String> {
    let Ok(doc) = serde_json::from_slice::<Value>(&index.index_json) else {
        return Vec::new();
    };
    doc["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["digest"].as_str())
        .filter(|d| !index.manifests.iter().any(|(_, m)| m == d) && index.blobs.contains_key(*d))
        .map(str::to_string)
        .collect()
}

/// Is this index entry a BuildKit attestation manifest? Its subject, if so.
pub fn attestation_subject(descriptor: &Value) -> Option<&str> {
    if descriptor["annotations"][ANNOTATION_REFERENCE_TYPE] != REFERENCE_TYPE_ATTESTATION {
        return None;
    }
    descriptor["annotations"][ANNOTATION_REFERENCE_DIGEST].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> BuiltIndex {
        let m1 = br#"{"m":1}"#.to_vec();
        let m2 = br#"{"m":2}"#.to_vec();
        let (d1, d2) = (
            crate::digest::sha256_digest(&m1),
            crate::digest::sha256_digest(&m2),
        );
        let index_json = to_canonical_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": MEDIA_MANIFEST, "digest": d1, "size": m1.len(),
                 "platform": {"architecture": "amd64", "os": "linux"}},
                {"mediaType": MEDIA_MANIFEST, "digest": d2, "size": m2.len(),
                 "platform": {"architecture": "arm64", "os": "linux"}},
            ],
        }))
        .unwrap();
        BuiltIndex {
            digest: crate::digest::sha256_digest(&index_json),
            index_json,
            blobs: BTreeMap::from([(d1.clone(), m1), (d2.clone(), m2)]),
            unread: BTreeMap::new(),
            ahead: BTreeMap::new(),
            manifests: vec![
                ("linux/amd64".parse().unwrap(), d1),
                ("linux/arm64".parse().unwrap(), d2),
            ],
            images: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn attestation_manifests_follow_the_images_in_the_index() {
        let index = built();
        let arm = index.manifests[1].1.clone();
        let statement = |t: &str| Statement {
            predicate_type: t.into(),
            bytes: format!("{{\"predicateType\":\"{t}\"}}").into_bytes(),
        };
        let out = attach(
            &index,
            &[Attestation {
                subject: arm.clone(),
                statements: vec![
                    statement("https://spdx.dev/Document"),
                    statement("https://slsa.dev/provenance/v1"),
                ],
            }],
        )
        .unwrap();
        assert_ne!(out.digest, index.digest);
        assert_eq!(out.manifests, index.manifests);
        let doc: Value = serde_json::from_slice(&out.index_json).unwrap();
        let entries = doc["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(attestation_subject(&entries[2]), Some(arm.as_str()));
        assert_eq!(
            listed_manifests(&out),
            [entries[2]["digest"].as_str().unwrap()]
        );
        assert!(listed_manifests(&index).is_empty());
        assert_eq!(entries[2]["platform"]["os"], "unknown");
        assert!(attestation_subject(&entries[0]).is_none());
        let m: Value =
            serde_json::from_slice(&out.blobs[entries[2]["digest"].as_str().unwrap()]).unwrap();
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0]["mediaType"], MEDIA_IN_TOTO);
        assert_eq!(
            layers[1]["annotations"][ANNOTATION_PREDICATE_TYPE],
            "https://slsa.dev/provenance/v1"
        );
        let config: Value =
            serde_json::from_slice(&out.blobs[m["config"]["digest"].as_str().unwrap()]).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
        // Every descriptor points at a blob of its size.
        for l in layers {
            assert_eq!(
                out.blobs[l["digest"].as_str().unwrap()].len() as u64,
                l["size"].as_u64().unwrap()
            );
        }
        // Nothing to attach: the same index.
        assert_eq!(attach(&index, &[]).unwrap().digest, index.digest);
        // A subject that is not in the index is a bug, not silently dropped.
        assert!(
            attach(
                &index,
                &[Attestation {
                    subject: "sha256:00".into(),
                    statements: vec![statement("x")]
                }]
            )
            .is_err()
        );
    }
}
