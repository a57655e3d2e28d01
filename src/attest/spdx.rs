//! SPDX 2.3 JSON (what ko and BuildKit attach). Every component is an SPDX package with
//! `filesAnalyzed: false`; the document namespace is derived from the document's own
//! digest, so the same SBOM always has the same bytes.

use serde_json::{Value, json};

use super::sbom::{
    Component, Kind, RelKind, Sbom, license_ref, rfc3339, sha256_hex, spdx_expression,
};

/// The media type of an SPDX JSON document (in-toto predicate type and OCI artifact type).
pub const MEDIA_TYPE: &str = "application/spdx+json";
/// The in-toto predicate type BuildKit uses for SPDX SBOMs.
pub const PREDICATE_TYPE: &str = "https://spdx.dev/Document";

/// `SPDXRef-…` for a component id: readable, and unique through a short hash of the id.
pub fn spdx_id(c: &Component) -> String {
    let mut name: String = c
        .name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
                ch
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(60);
    let kind = match c.kind {
        Kind::Container => "Image",
        Kind::Application => "Application",
        Kind::Library => "Package",
        Kind::OperatingSystem => "DebianPackage",
        Kind::File => "File",
    };
    format!(
        "SPDXRef-{kind}-{name}-{}",
        &sha256_hex(c.id.as_bytes())[..8]
    )
}

fn purpose(k: Kind) -> &'static str {
    match k {
        Kind::Container => "CONTAINER",
        Kind::Application => "APPLICATION",
        Kind::Library => "LIBRARY",
        Kind::OperatingSystem => "OPERATING-SYSTEM",
        Kind::File => "FILE",
    }
}

fn package(c: &Component) -> Value {
    let mut p = json!({
        "SPDXID": spdx_id(c),
        "name": c.name,
        "downloadLocation": c.download_location.as_deref().unwrap_or("NOASSERTION"),
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": match c.license.as_deref() {
            None => "NOASSERTION".to_string(),
            Some(l) if spdx_expression(l).is_some() => l.to_string(),
            Some(l) => license_ref(l),
        },
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": purpose(c.kind),
    });
    if let Some(v) = &c.version {
        p["versionInfo"] = json!(v);
    }
    if let Some(s) = &c.sha256 {
        p["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": s}]);
    }
    if let Some(purl) = &c.purl {
        p["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl,
        }]);
    }
    p
}

/// Render the document: pretty JSON with a final newline.
pub fn render(sbom: &Sbom) -> Vec<u8> {
    let id_of = |id: &str| {
        sbom.all()
            .find(|c| c.id == id)
            .map(spdx_id)
            .unwrap_or_default()
    };
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": spdx_id(&sbom.root),
    })];
    for r in &sbom.relationships {
        relationships.push(json!({
            "spdxElementId": id_of(&r.from),
            "relationshipType": match r.kind {
                RelKind::Contains => "CONTAINS",
                RelKind::DependsOn => "DEPENDS_ON",
            },
            "relatedSpdxElement": id_of(&r.to),
        }));
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": sbom.name,
        "documentNamespace": "",
        "creationInfo": {
            "created": rfc3339(sbom.created.unwrap_or(0)),
            "creators": [format!("Tool: kiln-{}", sbom.tool_version)],
        },
        "documentDescribes": [spdx_id(&sbom.root)],
        "packages": sbom.all().map(package).collect::<Vec<_>>(),
        "relationships": relationships,
    });
    // Free-text licenses: each `LicenseRef-…` with the text it stands for.
    let mut extracted: Vec<(String, &str)> = sbom
        .all()
        .filter_map(|c| c.license.as_deref())
        .filter(|l| spdx_expression(l).is_none())
        .map(|l| (license_ref(l), l))
        .collect();
    extracted.sort();
    extracted.dedup();
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = extracted
            .iter()
            .map(|(id, text)| json!({ "licenseId": id, "extractedText": text, "name": text }))
            .collect();
    }
    // The namespace must be unique per document: the digest of everything else is.
    let digest = sha256_hex(&serde_json::to_vec(&doc).unwrap_or_default());
    let slug: String = sbom
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    doc["documentNamespace"] = json!(format!("https://kiln.invalid/spdx/{slug}-{digest}"));
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::sbom::Relation;
    use super::*;

    pub(crate) fn sample() -> Sbom {
        let root = Component::with_purl(
            Kind::Container,
            "hello",
            Some("sha256:ab"),
            "pkg:oci/hello@sha256%3Aab?arch=arm64".into(),
        );
        let mut bin = Component::with_purl(Kind::Application, "hello", Some("0.1.0"), "x".into());
        bin.id = "binary:linux/arm64/hello".into();
        bin.purl = None;
        bin.sha256 = Some("00".repeat(32));
        let mut itoa = Component::with_purl(
            Kind::Library,
            "itoa",
            Some("1.0.15"),
            "pkg:cargo/itoa@1.0.15".into(),
        );
        itoa.license = Some("MIT OR Apache-2.0".into());
        let mut s = Sbom::new("hello linux/arm64", root.clone(), None);
        s.relationships = vec![
            Relation::new(&root.id, RelKind::Contains, &bin.id),
            Relation::new(&bin.id, RelKind::DependsOn, &itoa.id),
        ];
        s.components = vec![itoa, bin];
        s.finish()
    }

    #[test]
    fn deterministic_and_complete() {
        let a = render(&sample());
        assert_eq!(a, render(&sample()));
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["spdxVersion"], "SPDX-2.3");
        assert_eq!(v["creationInfo"]["created"], "1970-01-01T00:00:00Z");
        assert_eq!(v["packages"].as_array().unwrap().len(), 3);
        let ns = v["documentNamespace"].as_str().unwrap();
        assert!(
            ns.starts_with("https://kiln.invalid/spdx/hello-linux-arm64-"),
            "{ns}"
        );
        let rels = v["relationships"].as_array().unwrap();
        assert_eq!(rels.len(), 3);
        assert!(rels.iter().any(|r| r["relationshipType"] == "DEPENDS_ON"));
        let mut other = sample();
        other.created = Some(1700000000);
        let b: Value = serde_json::from_slice(&render(&other)).unwrap();
        assert_eq!(b["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        assert_ne!(b["documentNamespace"], v["documentNamespace"]);
    }
}
