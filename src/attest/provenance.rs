//! SLSA provenance v1 in an in-toto Statement v1, one per platform image: who built it
//! (kiln and its version), how (the resolved configuration and command line), from what
//! (the git commit, the toolchains, the base image), and what came out (the subjects).
//! Timestamps only from `SOURCE_DATE_EPOCH`, so the same build gives the same bytes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::sbom::rfc3339;

/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The media type of an in-toto statement (DSSE payload type too).
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// What `buildDefinition.externalParameters` means; documented in docs/supply-chain.md.
pub const BUILD_TYPE: &str = "https://kiln.invalid/build-types/kiln-build/v1";
/// kiln as a builder.
pub const BUILDER_ID: &str = "https://kiln.invalid/builder/kiln";

/// Something that came out of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `hello-rust@linux/arm64` for an image, the binary's name for a binary.
    pub name: String,
    /// Hex sha256.
    pub sha256: String,
}

/// The source tree the build ran in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// `origin`'s URL, else the directory.
    pub repository: String,
    pub commit: String,
    /// Uncommitted changes were present.
    pub dirty: bool,
}

/// Everything a statement says, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvenanceInput {
    pub subjects: Vec<Subject>,
    /// The command line as typed (`kiln build --platform …`).
    pub command: Vec<String>,
    /// The resolved kiln configuration (what the command line, environment and file gave).
    pub config: Value,
    /// `linux/arm64`.
    pub platform: String,
    pub source: Option<GitSource>,
    /// Tool name → version (`rustc`, `cargo`, `go`, `zig`, `cmake`), those that were used.
    pub toolchains: BTreeMap<String, String>,
    /// The base image: reference and `sha256:…` manifest digest.
    pub base: Option<(String, String)>,
    pub source_date_epoch: Option<u64>,
    pub kiln_version: String,
}

/// Render the statement: pretty JSON with a final newline.
pub fn statement(input: &ProvenanceInput) -> Vec<u8> {
    let mut deps: Vec<Value> = Vec::new();
    if let Some(g) = &input.source {
        deps.push(json!({
            "uri": format!("git+{}@{}", g.repository, g.commit),
            "digest": { "gitCommit": g.commit },
            "annotations": { "dirty": g.dirty },
        }));
    }
    for (tool, version) in &input.toolchains {
        deps.push(json!({
            "name": tool,
            "uri": format!("pkg:generic/{tool}@{}", version.replace(' ', "%20")),
            "annotations": { "version": version },
        }));
    }
    if let Some((reference, digest)) = &input.base {
        let hex = digest.trim_start_matches("sha256:");
        deps.push(json!({
            "name": "base image",
            "uri": reference,
            "digest": { "sha256": hex },
        }));
    }
    let mut metadata = json!({});
    if let Some(t) = input.source_date_epoch {
        metadata["startedOn"] = json!(rfc3339(t));
        metadata["finishedOn"] = json!(rfc3339(t));
    }
    let predicate = json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "command": input.command,
                "config": input.config,
                "platform": input.platform,
            },
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {
                "id": BUILDER_ID,
                "version": { "kiln": input.kiln_version },
            },
            "metadata": metadata,
        },
    });
    wrap(&input.subjects, PREDICATE_TYPE, predicate)
}

/// An in-toto Statement v1 about `subjects` (sorted by name) with any predicate: pretty
/// JSON with a final newline.
pub fn wrap(subjects: &[Subject], predicate_type: &str, predicate: Value) -> Vec<u8> {
    let mut subjects: Vec<Value> = subjects
        .iter()
        .map(|s| json!({ "name": s.name, "digest": { "sha256": s.sha256 } }))
        .collect();
    subjects.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let doc = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ProvenanceInput {
        ProvenanceInput {
            subjects: vec![Subject {
                name: "hello@linux/arm64".into(),
                sha256: "ab".repeat(32),
            }],
            command: vec!["kiln".into(), "build".into()],
            config: json!({"platforms": ["linux/arm64"]}),
            platform: "linux/arm64".into(),
            source: Some(GitSource {
                repository: "https://example.com/hello.git".into(),
                commit: "1".repeat(40),
                dirty: true,
            }),
            toolchains: [("rustc".to_string(), "1.93.0".to_string())].into(),
            base: Some(("oci:base".into(), format!("sha256:{}", "cd".repeat(32)))),
            source_date_epoch: None,
            kiln_version: "0.1.0".into(),
        }
    }

    #[test]
    fn statement_shape() {
        let a = statement(&input());
        assert_eq!(a, statement(&input()));
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["subject"][0]["digest"]["sha256"], "ab".repeat(32));
        let deps = v["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps.len(), 3);
        assert_eq!(deps[0]["annotations"]["dirty"], true);
        assert_eq!(deps[2]["digest"]["sha256"], "cd".repeat(32));
        assert!(
            v["predicate"]["runDetails"]["metadata"]
                .get("startedOn")
                .is_none()
        );
        let mut i = input();
        i.source_date_epoch = Some(0);
        let v: Value = serde_json::from_slice(&statement(&i)).unwrap();
        assert_eq!(
            v["predicate"]["runDetails"]["metadata"]["startedOn"],
            "1970-01-01T00:00:00Z"
        );
    }
}
