//! OCI 1.1 referrers: artifact manifests (an empty config, the document as the one layer,
//! `artifactType`, and a `subject` naming the image manifest or index they describe), and
//! the referrers index kept under the `sha256-<hex>` tag where a registry has no referrers
//! API. Attaching never changes the subject, so image and index digests stay the same.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::json::to_canonical_vec;

/// An image manifest's media type; artifact manifests are image manifests too.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The empty descriptor's media type (`{}` as config of an artifact).
pub const MEDIA_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// `{}`: the empty config blob.
pub const EMPTY_JSON: &[u8] = b"{}";
/// A DSSE envelope (a signed in-toto statement).
pub const MEDIA_DSSE: &str = "application/vnd.dsse.envelope.v1+json";
/// The in-toto predicate type of an attestation, as an annotation.
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// `org.opencontainers.image.created`.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// What an artifact is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    pub size: u64,
}

/// One layer of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLayer {
    pub media_type: String,
    pub bytes: Vec<u8>,
    /// `org.opencontainers.image.title` and the like.
    pub annotations: BTreeMap<String, String>,
}

/// An artifact manifest with its blobs, ready to write into a layout or push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// `sha256:…` of `manifest`.
    pub digest: String,
    pub manifest: Vec<u8>,
    pub artifact_type: String,
    pub subject: Subject,
    /// The manifest's annotations (copied into its descriptor in a referrers index).
    pub annotations: BTreeMap<String, String>,
    /// The empty config and the layers, `(digest, bytes)`.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Referrer {
    /// An artifact of `artifact_type` with `layers`, attached to `subject`.
    pub fn new(
        artifact_type: &str,
        subject: Subject,
        layers: Vec<ArtifactLayer>,
        annotations: BTreeMap<String, String>,
    ) -> anyhow::Result<Referrer> {
        let empty = crate::digest::sha256_digest(EMPTY_JSON);
        let mut blobs = vec![(empty.clone(), EMPTY_JSON.to_vec())];
        let mut layer_docs = Vec::new();
        for l in layers {
            let digest = crate::digest::sha256_digest(&l.bytes);
            let mut d = json!({
                "mediaType": l.media_type,
                "digest": digest,
                "size": l.bytes.len(),
            });
            if !l.annotations.is_empty() {
                d["annotations"] = json!(l.annotations);
            }
            layer_docs.push(d);
            blobs.push((digest, l.bytes));
        }
        let mut doc = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": MEDIA_EMPTY,
                "digest": empty,
                "size": EMPTY_JSON.len(),
                "data": "e30=",
            },
            "layers": layer_docs,
            "subject": {
                "mediaType": subject.media_type,
                "digest": subject.digest,
                "size": subject.size,
            },
        });
        if !annotations.is_empty() {
            doc["annotations"] = json!(annotations);
        }
        let manifest = to_canonical_vec(&doc)?;
        Ok(Referrer {
            digest: crate::digest::sha256_digest(&manifest),
            manifest,
            artifact_type: artifact_type.to_string(),
            subject,
            annotations,
            blobs,
        })
    }

    /// Its descriptor, as a layout's `index.json` and a referrers index list it.
    pub fn descriptor(&self) -> Value {
        let mut d = json!({
            "mediaType": MEDIA_MANIFEST,
            "digest": self.digest,
            "size": self.manifest.len(),
            "artifactType": self.artifact_type,
        });
        if !self.annotations.is_empty() {
            d["annotations"] = json!(self.annotations);
        }
        d
    }
}

/// The referrers tag fallback's tag for `digest`: `sha256:abc…` → `sha256-abc…`.
pub fn fallback_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The referrers index after adding `new` descriptors to `existing` (the index the
/// fallback tag held, if any): existing entries kept, the same digest listed once, sorted
/// by digest so the same set gives the same bytes.
pub fn merge_referrers_index(existing: Option<&[u8]>, new: &[Value]) -> anyhow::Result<Vec<u8>> {
    let mut by_digest: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(b) = existing {
        let v: Value = serde_json::from_slice(b)?;
        for d in v["manifests"].as_array().into_iter().flatten() {
            if let Some(dg) = d["digest"].as_str() {
                by_digest.insert(dg.to_string(), d.clone());
            }
        }
    }
    for d in new {
        if let Some(dg) = d["digest"].as_str() {
            by_digest.insert(dg.to_string(), d.clone());
        }
    }
    to_canonical_vec(&json!({
        "schemaVersion": 2,
        // layout::MEDIA_INDEX; layout imports this file.
        "mediaType": oci_spec::image::MediaType::ImageIndex.to_string(),
        "manifests": by_digest.into_values().collect::<Vec<_>>(),
    }))
}

/// Is this `index.json` entry (or referrers index entry) an artifact, not an image?
pub fn is_artifact_descriptor(d: &Value) -> bool {
    d.get("artifactType").is_some_and(Value::is_string)
}

/// What a reader learns of one attached artifact.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attachment {
    /// `sha256:…` of the artifact manifest.
    pub digest: String,
    pub artifact_type: String,
    /// `sha256:…` of what it is attached to.
    pub subject: String,
    /// The in-toto predicate type, when the artifact says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// It carries a DSSE envelope (a signature).
    pub signed: bool,
    /// Bytes of its layers.
    pub size: u64,
    /// `sha256:…` of its first layer (the document: an SBOM, a statement).
    #[serde(skip)]
    pub document: Option<String>,
}

/// Read an artifact manifest: `None` when it is not one (no `subject`).
pub fn attachment(digest: &str, manifest: &[u8]) -> Option<Attachment> {
    let v: Value = serde_json::from_slice(manifest).ok()?;
    let subject = v["subject"]["digest"].as_str()?.to_string();
    let layers = v["layers"].as_array().cloned().unwrap_or_default();
    let artifact_type = v["artifactType"]
        .as_str()
        .or_else(|| v["config"]["mediaType"].as_str())
        .unwrap_or("")
        .to_string();
    Some(Attachment {
        digest: digest.to_string(),
        artifact_type,
        subject,
        predicate_type: v["annotations"][ANNOTATION_PREDICATE_TYPE]
            .as_str()
            .map(str::to_string),
        signed: layers.iter().any(|l| l["mediaType"] == MEDIA_DSSE),
        size: layers.iter().filter_map(|l| l["size"].as_u64()).sum(),
        document: layers
            .first()
            .and_then(|l| l["digest"].as_str())
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            media_type: MEDIA_MANIFEST.into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            size: 123,
        }
    }

    #[test]
    fn an_artifact_manifest_names_its_subject() {
        let r = Referrer::new(
            "application/spdx+json",
            subject(),
            vec![ArtifactLayer {
                media_type: "application/spdx+json".into(),
                bytes: b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec(),
                annotations: BTreeMap::new(),
            }],
            BTreeMap::new(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&r.manifest).unwrap();
        assert_eq!(v["subject"]["digest"], subject().digest);
        assert_eq!(v["config"]["digest"], crate::digest::sha256_digest(b"{}"));
        assert_eq!(r.blobs.len(), 2);
        let a = attachment(&r.digest, &r.manifest).unwrap();
        assert_eq!(a.artifact_type, "application/spdx+json");
        assert!(!a.signed);
        assert_eq!(a.document.as_deref(), Some(r.blobs[1].0.as_str()));
        assert!(is_artifact_descriptor(&r.descriptor()));
        assert_eq!(
            fallback_tag(&subject().digest),
            format!("sha256-{}", "ab".repeat(32))
        );
    }

    #[test]
    fn the_referrers_index_keeps_old_entries_once() {
        let d = |x: &str| json!({"mediaType": MEDIA_MANIFEST, "digest": x, "size": 1, "artifactType": "t"});
        let one = merge_referrers_index(None, &[d("sha256:b"), d("sha256:a")]).unwrap();
        let two = merge_referrers_index(Some(&one), &[d("sha256:a"), d("sha256:c")]).unwrap();
        let v: Value = serde_json::from_slice(&two).unwrap();
        let got: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(got, ["sha256:a", "sha256:b", "sha256:c"]);
    }
}
