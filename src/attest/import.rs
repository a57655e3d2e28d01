//! The packages of a base image's own SBOM (SPDX 2.x or CycloneDX JSON, bare or as the
//! predicate of an in-toto statement), as components of the image built on it. What the
//! document says about itself (its root: the base image) is left out; the base is already
//! one component of the new SBOM.

use anyhow::bail;
use serde_json::Value;

use super::sbom::{Component, Kind, spdx_expression};

/// The packages `doc` lists, each once (by id), sorted.
pub fn base_components(doc: &[u8]) -> anyhow::Result<Vec<Component>> {
    let v: Value = serde_json::from_slice(doc)?;
    let v = if v["predicate"].is_object() {
        &v["predicate"]
    } else {
        &v
    };
    let mut out = if v["spdxVersion"]
        .as_str()
        .is_some_and(|s| s.starts_with("SPDX-"))
    {
        spdx(v)
    } else if v["bomFormat"] == "CycloneDX" {
        let mut out = Vec::new();
        cyclonedx(&v["components"], &mut out);
        out
    } else {
        bail!("not an SPDX or CycloneDX JSON document");
    };
    out.sort();
    out.dedup_by(|a, b| a.id == b.id);
    Ok(out)
}

/// A license kiln can carry over: an SPDX expression without `LicenseRef-`s (their text
/// lives in the other document).
fn license(text: Option<&str>) -> Option<String> {
    let t = text.filter(|t| !matches!(*t, "NOASSERTION" | "NONE"))?;
    spdx_expression(t).filter(|e| !e.contains("LicenseRef-"))
}

fn component(
    kind: Kind,
    name: &str,
    version: Option<&str>,
    purl: Option<&str>,
    license_text: Option<&str>,
    sha256: Option<&str>,
    download: Option<&str>,
) -> Component {
    let id = match purl {
        Some(p) => p.to_string(),
        None => format!("base-sbom:{name}@{}", version.unwrap_or("")),
    };
    Component {
        id,
        kind,
        name: name.to_string(),
        version: version.map(str::to_string),
        license: license(license_text),
        purl: purl.map(str::to_string),
        download_location: download
            .filter(|d| !matches!(*d, "NOASSERTION" | "NONE"))
            .map(str::to_string),
        sha256: sha256
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase),
    }
}

fn spdx(doc: &Value) -> Vec<Component> {
    // The document's root(s): what it DESCRIBES.
    let mut roots: Vec<&str> = doc["documentDescribes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for r in doc["relationships"].as_array().into_iter().flatten() {
        if r["relationshipType"] == "DESCRIBES" && r["spdxElementId"] == "SPDXRef-DOCUMENT" {
            roots.extend(r["relatedSpdxElement"].as_str());
        }
    }
    let mut out = Vec::new();
    for p in doc["packages"].as_array().into_iter().flatten() {
        let (Some(id), Some(name)) = (p["SPDXID"].as_str(), p["name"].as_str()) else {
            continue;
        };
        if roots.contains(&id) {
            continue;
        }
        let purl = p["externalRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["referenceType"] == "purl")
            .and_then(|r| r["referenceLocator"].as_str());
        let sha256 = p["checksums"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["algorithm"] == "SHA256")
            .and_then(|c| c["checksumValue"].as_str());
        let kind = match p["primaryPackagePurpose"].as_str() {
            Some("CONTAINER") => Kind::Container,
            Some("APPLICATION") => Kind::Application,
            Some("OPERATING-SYSTEM") => Kind::OperatingSystem,
            Some("FILE") => Kind::File,
            _ => Kind::Library,
        };
        let license_text = p["licenseDeclared"]
            .as_str()
            .filter(|l| *l != "NOASSERTION")
            .or(p["licenseConcluded"].as_str());
        out.push(component(
            kind,
            name,
            p["versionInfo"].as_str(),
            purl,
            license_text,
            sha256,
            p["downloadLocation"].as_str(),
        ));
    }
    out
}

fn cyclonedx(list: &Value, out: &mut Vec<Component>) {
    for c in list.as_array().into_iter().flatten() {
        let Some(name) = c["name"].as_str() else {
            continue;
        };
        let kind = match c["type"].as_str() {
            Some("container") => Kind::Container,
            Some("application") => Kind::Application,
            Some("operating-system") => Kind::OperatingSystem,
            Some("file") => Kind::File,
            _ => Kind::Library,
        };
        let licenses = c["licenses"].as_array().cloned().unwrap_or_default();
        let license_text = licenses.iter().find_map(|l| {
            l["expression"]
                .as_str()
                .or_else(|| l["license"]["id"].as_str())
        });
        let sha256 = c["hashes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|h| h["alg"] == "SHA-256")
            .and_then(|h| h["content"].as_str());
        out.push(component(
            kind,
            name,
            c["version"].as_str(),
            c["purl"].as_str(),
            license_text,
            sha256,
            None,
        ));
        cyclonedx(&c["components"], out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::sources::Found;
    use crate::attest::{BaseInput, BinaryInput, Format, ImageInput, platform_sbom};

    /// kiln's own SBOM of an image, read back as a base's: the same packages, the root left
    /// out, in both formats.
    #[test]
    fn a_kiln_sbom_reads_back_as_base_components() {
        let musl = crate::attest::sources::musl(Some("1.2.5"));
        let input = ImageInput {
            name: "base".into(),
            platform: "linux/amd64".into(),
            manifest: Some(format!("sha256:{}", "ab".repeat(32))),
            files: Vec::new(),
            binaries: vec![BinaryInput {
                platform: "linux/amd64".into(),
                name: "tool".into(),
                version: Some("1.0".into()),
                sha256: "cd".repeat(32),
                found: Found {
                    linked: vec![musl.id.clone()],
                    components: vec![musl],
                    ..Default::default()
                },
            }],
            base: BaseInput::Scratch,
            created: None,
        };
        let (sbom, _) = platform_sbom(&input);
        for f in [Format::Spdx, Format::CycloneDx] {
            let got = base_components(&f.render(&sbom)).unwrap();
            let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
            assert!(names.contains(&"tool"), "{f:?}: {names:?}");
            assert!(names.contains(&"musl"), "{f:?}: {names:?}");
            assert!(
                !names.contains(&"base"),
                "{f:?}: the root is left out: {names:?}"
            );
            let tool = got.iter().find(|c| c.name == "tool").unwrap();
            assert_eq!(tool.sha256.as_deref(), Some("cd".repeat(32).as_str()));
        }
        assert!(base_components(b"{\"hello\":1}").is_err());
    }
}
