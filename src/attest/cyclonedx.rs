//! CycloneDX 1.5 JSON. The root is `metadata.component`, everything else a flat
//! `components` list, relationships a `dependencies` graph. The serial number is a UUID
//! derived from the document's digest; a timestamp only with `SOURCE_DATE_EPOCH`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::sbom::{Component, Kind, Sbom, rfc3339, sha256_hex};

/// The media type of a CycloneDX JSON document.
pub const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
/// The in-toto predicate type for CycloneDX SBOMs.
pub const PREDICATE_TYPE: &str = "https://cyclonedx.org/bom";

fn component(c: &Component) -> Value {
    let mut v = json!({
        "type": match c.kind {
            Kind::Container => "container",
            Kind::Application => "application",
            Kind::Library => "library",
            Kind::OperatingSystem => "operating-system",
            Kind::File => "file",
        },
        "bom-ref": c.id,
        "name": c.name,
    });
    if let Some(ver) = &c.version {
        v["version"] = json!(ver);
    }
    if let Some(l) = &c.license {
        v["licenses"] = if super::sbom::spdx_expression(l).is_some() {
            json!([{ "expression": l }])
        } else {
            json!([{ "license": { "name": l } }])
        };
    }
    if let Some(p) = &c.purl {
        v["purl"] = json!(p);
    }
    if let Some(s) = &c.sha256 {
        v["hashes"] = json!([{ "alg": "SHA-256", "content": s }]);
    }
    if let Some(d) = &c.download_location {
        v["externalReferences"] = json!([{ "type": "distribution", "url": d }]);
    }
    v
}

/// A version-4-shaped UUID from the first 16 bytes of a hex digest.
fn uuid_from(hex_digest: &str) -> String {
    let mut b = hex::decode(&hex_digest[..32]).unwrap_or_else(|_| vec![0; 16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Render the document: pretty JSON with a final newline.
pub fn render(sbom: &Sbom) -> Vec<u8> {
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in sbom.all() {
        deps.insert(c.id.as_str(), Vec::new());
    }
    for r in &sbom.relationships {
        deps.entry(r.from.as_str()).or_default().push(r.to.as_str());
    }
    let dependencies: Vec<Value> = deps
        .into_iter()
        .map(|(r, mut on)| {
            on.sort();
            on.dedup();
            json!({ "ref": r, "dependsOn": on })
        })
        .collect();
    let mut metadata = json!({
        "tools": { "components": [{
            "type": "application",
            "name": "kiln",
            "version": sbom.tool_version,
        }]},
        "component": component(&sbom.root),
    });
    if let Some(t) = sbom.created {
        metadata["timestamp"] = json!(rfc3339(t));
    }
    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": metadata,
        "components": sbom.components.iter().map(component).collect::<Vec<_>>(),
        "dependencies": dependencies,
    });
    let digest = sha256_hex(&serde_json::to_vec(&doc).unwrap_or_default());
    doc["serialNumber"] = json!(format!("urn:uuid:{}", uuid_from(&digest)));
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::spdx::tests::sample;

    #[test]
    fn deterministic_and_complete() {
        let a = render(&sample());
        assert_eq!(a, render(&sample()));
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["specVersion"], "1.5");
        assert!(v["metadata"].get("timestamp").is_none());
        let serial = v["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
        assert_eq!(&serial[23..24], "4");
        assert_eq!(v["components"].as_array().unwrap().len(), 2);
        let deps = v["dependencies"].as_array().unwrap();
        let bin = deps
            .iter()
            .find(|d| d["ref"] == "binary:linux/arm64/hello")
            .unwrap();
        assert_eq!(bin["dependsOn"][0], "pkg:cargo/itoa@1.0.15");
    }
}
